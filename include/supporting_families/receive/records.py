"""A return's names, paths and records: the file name that answers a delivery, where a return is kept
(docs/STORE.md), what a run and a received file record, and the rules a quarantine can name."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from upath import UPath

from supporting_families.audit import EntryKind, NewEntry
from supporting_families.config.agreements import Agreement
from supporting_families.receive.remote import Collected, name_sha256
from supporting_families.receive.validate import (
    RETURN_FILE_RULES,
)
from supporting_families.share.delivery import DELIVERY_ID_PATTERN

log = logging.getLogger(__name__)

#: Every rule a quarantined return can name: the file and row rules of validation, and these.
QUARANTINE_RULES: Final[dict[str, str]] = {
    **RETURN_FILE_RULES,
    "file_name": "the name matches the agreement's pattern but carries no delivery id (d + 16 letters a-p)",
    "unknown_delivery": "the return names a delivery this agreement never made",
    "signature": "the signature is missing, bad, or not by the partner's pinned key",
    "integrity": "the ciphertext is not integrity protected or was modified",
    "decryption": "the file is not a message encrypted to the council's key",
    "receipt_mismatch": "the receipt's row count or hash differs from the delivery's manifest",
    "already_received": "a different file under this name was already taken in",
    "superseded": "an earlier file under this name was replaced by the partner before it was processed",
    "unsafe_name": "the remote name is unsafe (path separator, '..', control character, ...)",
    "not_regular_file": "the remote entry is not a regular file (e.g. a symbolic link)",
    "too_large": "the file is larger than the agreement's returns.max_size_mib",
}

_DELIVERY_ID: Final = re.compile(DELIVERY_ID_PATTERN)
#: Row numbers kept in reason.json (report.csv has them all).
_REASON_ROWS: Final = 100
_DAY: Final = timedelta(days=1)

ReturnState = Literal["accepted", "quarantined", "pending", "absent"]


# -- names and paths ---------------------------------------------------------------------------------


def return_file_name(agreement: Agreement, delivery_id: str) -> str:
    """The name of the return answering ``delivery_id``: the agreement's pattern with the id for its ``*``."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("a delivery id is 'd' and 16 lower-case hex digits")
    return agreement.returns.file_pattern.replace("*", delivery_id, 1)


def delivery_id_of(agreement: Agreement, name: str) -> str | None:
    """The delivery id a return's name carries, or None when it does not match ``<prefix>-<id><suffix>``."""
    prefix, _, suffix = agreement.returns.file_pattern.partition("*")
    if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) < len(prefix) + len(suffix):
        return None
    middle = name[len(prefix) : len(name) - len(suffix)]
    return middle if _DELIVERY_ID.fullmatch(middle) else None


def ledger_file_name(agreement: Agreement, name: str) -> str:
    """How the ledger records a partner's file name: as it is when it is exactly the agreement's return
    name for a delivery id (``dwp-return-d`` + 16 letters a-p ``.csv.gpg``), else by its SHA-256 only.

    The partner chooses the name, and the ledger is immutable: a name carrying a date of birth or a person's
    name would stay there beyond the reach of erasure (UK GDPR Article 17). reason.json in the quarantine
    keeps the name itself, with the data it came with.
    """
    return name if delivery_id_of(agreement, name) is not None else name_sha256(name)


def _stem(name: str) -> str:
    for suffix in (".csv.gpg", ".csv.pgp", ".gpg", ".pgp"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class ReturnPaths:
    """Where one return lives in the store once fetched (docs/STORE.md)."""

    store: UPath
    agreement_id: str
    name: str

    @property
    def folder(self) -> UPath:
        return self.store / "returns" / self.agreement_id / self.name

    @property
    def original(self) -> UPath:
        """The encrypted file exactly as the partner left it."""
        return self.folder / self.name

    @property
    def received_path(self) -> UPath:
        return self.folder / "received.json"

    @property
    def reconciliation_path(self) -> UPath:
        """Written last: its presence means the return was taken in."""
        return self.folder / "reconciliation.json"

    @property
    def classified_path(self) -> UPath:
        return self.folder / "classified.parquet"

    @property
    def flags_path(self) -> UPath:
        return self.store / "register" / "partner_flags" / f"{self.agreement_id}__{_stem(self.name)}.parquet"

    @property
    def quarantine_base(self) -> UPath:
        return self.store / "quarantine" / "returns" / self.agreement_id / self.name

    def quarantine_folders(self) -> list[UPath]:
        """This name's quarantine folders: ``<name>/`` and, for later bad files, ``<name>~<sha prefix>/``."""
        parent = self.quarantine_base.parent
        if not parent.exists():
            return []
        return sorted(
            (p for p in parent.iterdir() if p.name == self.name or p.name.startswith(f"{self.name}~")),
            key=lambda p: p.name,
        )


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Which DAG run, task and try acted, for the ledger (all optional outside Airflow)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    triggered_by: str | None = None

    def columns(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Received:
    """What the council knows about a fetched return before opening it (``received.json``)."""

    name: str
    ciphertext_sha256: str
    size: int
    #: The server's modification time: when the partner finished writing the file.
    arrived_at: datetime
    fetched_at: datetime
    delivery_id: str | None
    #: None when the delivery is unknown (no receipt to count from).
    late: bool | None
    days_after_delivery: int | None

    def to_json(self) -> bytes:
        data = asdict(self)
        data["arrived_at"] = self.arrived_at.isoformat()
        data["fetched_at"] = self.fetched_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, text: str) -> Received:
        data = json.loads(text)
        data["arrived_at"] = datetime.fromisoformat(data["arrived_at"])
        data["fetched_at"] = datetime.fromisoformat(data["fetched_at"])
        return cls(**data)

    @property
    def collected(self) -> Collected:
        return Collected(self.name, self.size, self.arrived_at)


def _read_json(path: UPath) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _entry(agreement: Agreement, kind: EntryKind, run: RunInfo | None, **columns: Any) -> NewEntry:
    return NewEntry.for_agreement(agreement, kind=kind, **{**(run.columns() if run else {}), **columns})
