"""Stable person ids: the same person keeps the same ``person_id`` from run to run.

``register/id_map.parquet`` maps each (source, record_id) ever seen to its person id, and
``register/retired_ids.parquet`` records ids that stopped being used because their records were merged into
another person (with the id that now holds them). The rules, in :func:`assign_person_ids`:

* a cluster (one person's records) holding known records keeps the oldest id among them; ids are
  ``P`` + a 10-digit counter, so the oldest id is the smallest;
* when clusters merge, the merged cluster keeps the oldest id and the others are retired into it;
* when a person's records split apart, the id stays with the cluster holding most of them;
* a new cluster gets the next number of the counter (the highest ever used, retired ones included, plus
  one), handed out in order of each new cluster's smallest (source, record_id), so ids never depend on the
  order of input rows;
* a record missing from this run's input keeps its row in the map, so that its person keeps the same id if
  it comes back (erasure, a data subject right the rights package builds, removes rows by person).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

ID_MAP_SCHEMA: Final = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
    ]
)
RETIRED_SCHEMA: Final = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),  # the retired id
        pa.field("merged_into", pa.string(), nullable=False),  # the id that now holds its records
    ]
)

PERSON_ID_PREFIX: Final = "P"
PERSON_ID_DIGITS: Final = 10


@dataclass(frozen=True)
class RegisterState:
    """What persists between runs so that ids stay stable: the id map and the retired ids."""

    id_map: pa.Table
    retired: pa.Table

    @classmethod
    def empty(cls) -> RegisterState:
        return cls(ID_MAP_SCHEMA.empty_table(), RETIRED_SCHEMA.empty_table())


@dataclass(frozen=True)
class IdAssignment:
    person_id: list[str]  # per input record, in input order
    state: RegisterState
    kept: int
    new: int
    retired: int


def person_id_of(seq: int) -> str:
    return f"{PERSON_ID_PREFIX}{seq:0{PERSON_ID_DIGITS}d}"


def _seq(person_id: str) -> int:
    return int(person_id[len(PERSON_ID_PREFIX) :])


def _column(table: pa.Table, name: str) -> list[str]:
    values: list[str] = table.column(name).to_pylist()
    return values


def assign_person_ids(
    source: Sequence[str], record_id: Sequence[str], cluster: Sequence[int], previous: RegisterState | None
) -> IdAssignment:
    """Person ids for clustered records: ``cluster`` gives the records of one person the same number."""
    previous = previous or RegisterState.empty()
    known = dict(
        zip(
            zip(_column(previous.id_map, "source"), _column(previous.id_map, "record_id"), strict=True),
            _column(previous.id_map, "person_id"),
            strict=True,
        )
    )
    retired_before = dict(
        zip(_column(previous.retired, "person_id"), _column(previous.retired, "merged_into"), strict=True)
    )
    next_seq = max([_seq(p) for p in known.values()] + [_seq(p) for p in retired_before], default=0) + 1

    # Claims: (old id, cluster) -> how many of the cluster's records carried that id last time.
    claims: Counter[tuple[str, int]] = Counter()
    first_key: dict[int, tuple[str, str]] = {}
    for s, r, c in zip(source, record_id, cluster, strict=True):
        key = (s, r)
        if c not in first_key or key < first_key[c]:
            first_key[c] = key
        old = known.get(key)
        if old is not None:
            claims[(old, c)] += 1
    # The oldest id is served first; an id whose records split goes to the cluster holding most of them.
    ordered = sorted(claims.items(), key=lambda kv: (_seq(kv[0][0]), -kv[1], first_key[kv[0][1]]))
    assigned: dict[int, str] = {}
    taken: set[str] = set()
    for (old, c), _count in ordered:
        if c not in assigned and old not in taken:
            assigned[c] = old
            taken.add(old)
    kept = len(assigned)
    for c in sorted(set(first_key) - set(assigned), key=lambda c: first_key[c]):
        assigned[c] = person_id_of(next_seq)
        next_seq += 1
    person_ids = [assigned[c] for c in cluster]

    retired = dict(retired_before)
    for (old, c), _count in ordered:
        if old not in taken and old not in retired:
            retired[old] = assigned[c]
    # Follow chains (an id retired earlier into an id retired now) to the id in use.
    for old in list(retired):
        into, seen = retired[old], {old}
        while into in retired and into not in seen:
            seen.add(into)
            into = retired[into]
        retired[old] = into

    present = set(zip(source, record_id, strict=True))
    rows = list(zip(source, record_id, person_ids, strict=True))
    rows += [(s, r, retired.get(p, p)) for (s, r), p in known.items() if (s, r) not in present]
    rows.sort()
    id_map = pa.Table.from_pydict(
        {name: [row[i] for row in rows] for i, name in enumerate(ID_MAP_SCHEMA.names)}, schema=ID_MAP_SCHEMA
    )
    retired_rows = sorted(retired.items())
    retired_table = pa.Table.from_pydict(
        {"person_id": [r[0] for r in retired_rows], "merged_into": [r[1] for r in retired_rows]},
        schema=RETIRED_SCHEMA,
    )
    return IdAssignment(
        person_id=person_ids,
        state=RegisterState(id_map, retired_table),
        kept=kept,
        new=len(first_key) - kept,
        retired=len(retired) - len(retired_before),
    )
