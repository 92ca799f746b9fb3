"""Merging a reconciled return's flags into the register, with their source."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.receive.reconcile import (
    partner_flags,
)
from supporting_families.receive.records import ReturnPaths
from supporting_families.registers.restrictions import read_restrictions, restricted_persons
from supporting_families.store.io import (
    write_parquet,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeResult:
    path: UPath
    #: Real flags only (rows with a sub-criterion), never the answer markers beside them.
    flags: int
    status: Literal["merged", "already_merged"]


class MergeConflict(RuntimeError):
    """A different return under the same name was merged before (the register keeps the first)."""


def merge_flags(
    store: UPath,
    agreement: Agreement,
    accepted: pa.Table,
    *,
    return_file: str,
    file_sha256: str,
    answered_at: datetime | None,
) -> MergeResult:
    """Write the accepted rows' flags, and an answer marker per matched person, to
    ``register/partner_flags/<agreement>__<return stem>.parquet`` (receive_reconcile.partner_flags).

    ``answered_at`` is when the delivery this return answers was delivered (None: unknown, the answers
    then supersede nothing). Atomic (the whole file appears at once) and idempotent per file hash: the same
    return merged again changes nothing; a different one under the same name is a :class:`MergeConflict`.
    """
    path = ReturnPaths(store, agreement.id, return_file).flags_path
    if path.exists():
        with path.open("rb") as fh:
            metadata = pq.read_metadata(fh)
        written = metadata.schema.to_arrow_schema().metadata or {}
        if written.get(b"file_sha256", b"").decode() == file_sha256:
            # The flag count is kept in the metadata because the file also holds markers; a file merged
            # before markers existed has none, so its row count is its flag count.
            return MergeResult(path, int(written.get(b"flags", metadata.num_rows)), "already_merged")
        raise MergeConflict(f"{agreement.id}: {path.name} was merged from a different file")
    rows = partner_flags(accepted, agreement, file_sha256, answered_at=answered_at)
    # A restriction, objection or consent withdrawal in force today stops the merging of answers about the
    # person (further processing; docs/ARCHITECTURE.md, "Rights"). The return file itself is kept as
    # received; only the flags stay out of the register.
    blocked = restricted_persons(read_restrictions(store), datetime.now(UTC).date())
    if len(blocked):
        rows = rows.filter(pc.invert(pc.is_in(rows["person_id"], value_set=blocked)))
    flags = rows.num_rows - rows.column("sub_criterion").null_count
    rows = rows.replace_schema_metadata(
        {
            "file_sha256": file_sha256,
            "return_file": return_file,
            "agreement_id": agreement.id,
            "flags": str(flags),
        }
    )
    # Written once and read whole by the criteria engine: uncompressed and without statistics it is written
    # faster; dictionaries only for the columns that repeat one value (source, sub-criterion), not the ids.
    write_parquet(
        rows,
        path,
        compression="none",
        use_dictionary=["sub_criterion", "partner", "agreement_id", "file_sha256"],
        write_statistics=False,
    )
    log.info(
        "%s: merged %d partner flags and %d answers from %s",
        agreement.id,
        flags,
        rows.num_rows - flags,
        return_file,
    )
    return MergeResult(path, flags, "merged")
