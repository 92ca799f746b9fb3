"""The practitioners' decisions as stored: ``register/assessments.parquet`` and the latest per family.

Apart from :mod:`supporting_families.identify.assessment` (which records decisions and checks them against
the worklist) so that identification itself can read them without an import cycle: a family that objected
is left out of identification (:func:`supporting_families.identify.store.restricted_for_identification`).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.store.layout import register_file

ASSESSMENT_SCHEMA: Final = pa.schema(
    [
        pa.field("assessment_id", pa.string(), nullable=False),
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("programme_status", pa.string()),
        #: the practitioner's id in the council's directory (never a name)
        pa.field("practitioner", pa.string(), nullable=False),
        #: the identification (worklist) the practitioner reviewed
        pa.field("identification_as_of", pa.date32()),
        #: SHA-256 of that worklist file: which evidence the decision was made on
        pa.field("worklist_sha256", pa.string()),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        #: one of REASONS[decision]
        pa.field("reason", pa.string(), nullable=False),
        #: the caller's idempotency key (the DAG run id): a retried request is recorded once
        pa.field("request_id", pa.string()),
    ]
)


def _read_assessments(store: UPath) -> pa.Table:
    path = register_file(store, "assessments")
    if not path.exists():
        return ASSESSMENT_SCHEMA.empty_table()
    with path.open("rb") as fh:
        return pq.read_table(fh).cast(ASSESSMENT_SCHEMA)


def assessment_status(store: UPath) -> pa.Table:
    """The latest decision per family (by time recorded, then order of recording).

    Columns: family_id, decision, reason, programme_status (null after ``withdrawn``), practitioner,
    identification_as_of, recorded_at, assessment_id. The share DAGs read ``programme_status`` from here.
    """
    table = _read_assessments(store)
    columns = [
        "family_id",
        "decision",
        "reason",
        "programme_status",
        "practitioner",
        "identification_as_of",
        "recorded_at",
        "assessment_id",
    ]
    if table.num_rows == 0:
        return table.select(columns)
    table = table.append_column("_seq", pa.array(range(table.num_rows), pa.int64()))
    ordered = table.sort_by([("family_id", "ascending"), ("recorded_at", "ascending"), ("_seq", "ascending")])
    family = ordered.column("family_id").combine_chunks()
    n = len(family)
    # The last row of each family's run in the sorted table is its latest decision.
    is_last = pc.not_equal(family.slice(0, n - 1), family.slice(1)) if n > 1 else pa.array([], pa.bool_())
    last = pa.concat_arrays([is_last, pa.array([True])])
    return ordered.filter(last).select(columns)
