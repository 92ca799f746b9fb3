"""The partner simulator: stands in for DWP, the Metropolitan Police and ONS in the demo and the tests.

Kept apart from the platform (``supporting_families``): it plays the other side of each data agreement.
It may use the platform's OpenPGP wrapper and agreement model, but nothing in ``supporting_families``
imports it.

Public API::

    from sf_demo.partner_simulator import Fault, simulate

    report = simulate(agreement, inbox=..., outbox=..., collected_dir=..., partner_gnupg_home=...,
                      partner_fingerprint=..., council_fingerprint=..., partner_truth=..., as_of=...,
                      faults=frozenset({Fault.MISSING_ROWS}), seed=1)

CLI, in the demo environment (``scripts/env.sh``)::

    python -m sf_demo.partner_simulator run --agreement dwp-benefits-matching [--fault missing_rows]

The matching rules are in :mod:`sf_demo.partner_simulator.answers`, what each fault leaves in
:mod:`sf_demo.partner_simulator.faults`.

Importing the package is cheap (the demo DAG imports :class:`Fault` at parse time): the simulator itself
is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sf_demo.partner_simulator.faults import Fault, FaultError, parse_faults

if TYPE_CHECKING:
    from sf_demo.partner_simulator.answers import DeliveryRefused, SimulatorError, UnsupportedPartner
    from sf_demo.partner_simulator.simulator import SimulationReport, simulate

__all__ = [
    "DeliveryRefused",
    "Fault",
    "FaultError",
    "SimulationReport",
    "SimulatorError",
    "UnsupportedPartner",
    "parse_faults",
    "simulate",
]

_LAZY = {
    "DeliveryRefused": "sf_demo.partner_simulator.answers",
    "SimulatorError": "sf_demo.partner_simulator.answers",
    "UnsupportedPartner": "sf_demo.partner_simulator.answers",
    "SimulationReport": "sf_demo.partner_simulator.simulator",
    "simulate": "sf_demo.partner_simulator.simulator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
