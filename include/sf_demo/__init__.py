"""The demo kit: everything a council does not run in production, so the platform can run on one machine.

It plays the world around the product (``supporting_families``): a local partner SFTP server (OpenSSH
``sshd`` on 127.0.0.1), the demo's secrets (pseudonym keys, OpenPGP keys for the council and the simulated
partners, the SFTP client key and Airflow's ``connections.json``), a synthetic borough with the extracts its
departments send, and a partner simulator that answers deliveries as DWP, the Metropolitan Police and ONS
would. The data it makes is synthetic but is handled as if it were real personal data.

The product never imports it (``tests/unit/test_boundaries.py`` checks), and it is removed in production:
real partners run their own servers and keep their own keys, secrets come from the deployment's secrets
backend, and the extracts come from the council's departments.

Set-up (``scripts/setup.sh``, ``make sftp-start``) runs the first two; the DAGs ``demo_synthetic_borough``
and ``demo_partner_simulator`` run the others, and the last is also a command of its own::

    python -m sf_demo.sftp_server start --state-dir var/sftp --root var/sftp/root
    python -m sf_demo.secrets --state-dir var/secrets --sftp-state-dir var/sftp
    python -m sf_demo.partner_simulator run --agreement dwp-benefits-matching

Tests and benchmarks use the names below. Importing the package is cheap (the demo DAGs import from it at
parse time): each name is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sf_demo.partner_simulator import Fault, simulate
    from sf_demo.secrets import SecretsLayout, generate_demo_secrets, stop_gpg_agents
    from sf_demo.sftp_server import LocalSftpServer, SftpServerInfo
    from sf_demo.synthetic import generate_borough, write_borough

__all__ = [
    "Fault",
    "LocalSftpServer",
    "SecretsLayout",
    "SftpServerInfo",
    "generate_borough",
    "generate_demo_secrets",
    "simulate",
    "stop_gpg_agents",
    "write_borough",
]

_LAZY = {
    "LocalSftpServer": "sf_demo.sftp_server",
    "SftpServerInfo": "sf_demo.sftp_server",
    "SecretsLayout": "sf_demo.secrets",
    "generate_demo_secrets": "sf_demo.secrets",
    "stop_gpg_agents": "sf_demo.secrets",
    "generate_borough": "sf_demo.synthetic",
    "write_borough": "sf_demo.synthetic",
    "Fault": "sf_demo.partner_simulator",
    "simulate": "sf_demo.partner_simulator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
