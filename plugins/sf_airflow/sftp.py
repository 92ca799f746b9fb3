"""The core SFTP client's endpoint, built from an Airflow connection.

Airflow only supplies the connection here: the transfers themselves are the core's
(``supporting_families.transport.sftp``), because the stock ``SFTPHook`` compresses, uses small requests
and overwrites in place (about a tenth of OpenSSH's throughput, measured on these machines). The
connection keeps the shape ``SFTPHook`` reads, so one connection serves both the deferrable
``SFTPSensor`` and delivery:

    conn_type sftp, host, port, login,
    extra: {"key_file": "/path/id_ed25519" | "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----...",
            "private_key_passphrase": "...", "host_key": "ssh-ed25519 AAAA...", "conn_timeout": 10}

A connection that switches host-key checking off (``no_host_key_check``, ``allow_host_key_change``) is
refused rather than silently pinned anyway: it says someone meant to trust any server, which a share of
personal data must not (docs/ARCHITECTURE.md: partner host keys are pinned).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from supporting_families.transport import SftpEndpoint

SFTP_PORT = 22


class SftpConnectionError(ValueError):
    """The Airflow connection cannot describe a pinned, key-authenticated SFTP endpoint."""


def _flag(extra: Mapping[str, Any], name: str) -> bool:
    # Connection extras arrive as JSON booleans or, from URIs and the UI, as strings.
    value = extra.get(name, False)
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def endpoint_from_fields(
    conn_id: str, *, host: str | None, port: int | None, login: str | None, extra: Mapping[str, Any]
) -> SftpEndpoint:
    """An :class:`SftpEndpoint` from a connection's fields; SftpConnectionError names what is wrong."""
    problems: list[str] = []
    if not host:
        problems.append("host is empty")
    if not login:
        problems.append("login is empty")
    host_key = extra.get("host_key")
    if not host_key:
        problems.append('extra.host_key is missing: pin the server key as "ssh-ed25519 AAAA..."')
    for flag in ("no_host_key_check", "allow_host_key_change"):
        if _flag(extra, flag):
            problems.append(f"extra.{flag} is true: host-key checking must stay on")
    key_file, private_key = extra.get("key_file"), extra.get("private_key")
    if bool(key_file) == bool(private_key):
        problems.append("give exactly one of extra.key_file and extra.private_key")
    if problems:
        raise SftpConnectionError(f"connection {conn_id!r}: " + "; ".join(problems))
    passphrase = extra.get("private_key_passphrase") or None
    try:
        return SftpEndpoint(
            str(host),
            int(port or SFTP_PORT),
            str(login),
            host_key=str(host_key),
            private_key_path=Path(str(key_file)) if key_file else None,
            private_key_text=str(private_key) if private_key else None,
            private_key_passphrase=str(passphrase) if passphrase else None,
            connect_timeout=float(extra.get("conn_timeout") or 10),
        )
    except ValueError as exc:
        raise SftpConnectionError(f"connection {conn_id!r}: {exc}") from None


def sftp_endpoint(conn_id: str) -> SftpEndpoint:
    """The endpoint of Airflow connection ``conn_id`` (an agreement's ``sftp.conn_id``)."""
    conn = BaseHook.get_connection(conn_id)
    return endpoint_from_fields(
        conn_id, host=conn.host, port=conn.port, login=conn.login, extra=conn.extra_dejson
    )
