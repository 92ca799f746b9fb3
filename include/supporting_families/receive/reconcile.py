"""Reconcile a validated return against the delivery it answers, and turn accepted rows into partner flags.

every reference is classified, and the classes add up. The classes, precisely:

``matched``
    a reference that was sent, whose **first** row in the return (in file order) has a status the agreement
    counts as matched (or the return has no status column, as the police's has not);
``rejected_by_partner``
    a reference that was sent, whose first row has one of the agreement's ``status.rejected`` values (DWP:
    ``address_not_confirmed``);
``no_trace``
    a reference that was sent and does not appear in the return at all (for the police, whose return lists
    only people they hold something for, this is the normal "nothing held");
``unexpected``
    a reference that appears in the return but was never sent in that delivery (counted once per distinct
    reference, on its first row);
``duplicate``
    every row of a reference after its first: a reference on k rows keeps its first row's class and adds
    k - 1 ``duplicate`` rows. Only the first row's values are ever merged (``conflicting_duplicates`` counts
    the references whose later rows disagree with the first, so a partner's inconsistency is visible).

The invariant, checked on every reconciliation (a failure is a bug, :class:`ReconciliationError`):

    matched + rejected_by_partner + no_trace             = sent                  (each sent reference once)
    matched + rejected_by_partner + unexpected + duplicate = returned rows        (each returned row once)

hence ``matched + rejected_by_partner + no_trace + unexpected + duplicate = sent + unexpected + duplicate``:
the classes add up to what was sent plus what was unexpected plus the extra rows of duplicates, and
``classified.parquet`` has exactly that many rows (one per sent reference, one per returned row that is not
a sent reference's first).

Everything is vectorised (Arrow compute and NumPy): a 1,000,000-row return reconciles and merges in well
under the issue's 2 seconds (benchmarks/bench_reconcile.py).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.store.io import write_parquet
from supporting_families.store.schemas import PARTNER_FLAGS_SCHEMA

__all__ = [
    "CLASSES",
    "CLASSIFIED_SCHEMA",
    "PARTNER_FLAGS_SCHEMA",
    "Reconciliation",
    "ReconciliationError",
    "partner_flags",
    "reconcile",
    "write_classified",
]

ReferenceClass = Literal["matched", "rejected_by_partner", "no_trace", "unexpected", "duplicate"]
#: The classes, in the order reports list them.
CLASSES: Final[tuple[ReferenceClass, ...]] = (
    "matched",
    "rejected_by_partner",
    "no_trace",
    "unexpected",
    "duplicate",
)
_CODE: Final = {name: i for i, name in enumerate(CLASSES)}

#: ``classified.parquet``: one row per sent reference and per returned row that is not a sent reference's
#: first. ``row_number`` is the return's spreadsheet row (null for ``no_trace``); ``person_id`` is null for
#: ``unexpected`` (and for a return keyed on family references).
CLASSIFIED_SCHEMA: Final = pa.schema(
    [
        pa.field("reference", pa.string(), nullable=False),
        pa.field("person_id", pa.string()),
        pa.field("class", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("row_number", pa.int64()),
    ]
)

_PPM: Final = 1_000_000


class ReconciliationError(RuntimeError):
    """The inputs cannot be reconciled (a broken reference list) or the invariant failed (a bug)."""


@dataclass(frozen=True)
class Reconciliation:
    """Counts, the per-reference classification and the rows whose flags may be merged."""

    counts: Mapping[str, int]
    sent: int
    returned_rows: int
    conflicting_duplicates: int
    #: One row per sent reference and per returned row that is not a sent reference's first (PD by id).
    classified: pa.Table
    #: The first row of every ``matched`` reference, with its ``person_id`` (read by :func:`partner_flags`).
    accepted: pa.Table

    @property
    def match_rate_ppm(self) -> int:
        """Matched references per million sent (an integer: the ledger refuses floats)."""
        return self.counts["matched"] * _PPM // self.sent if self.sent else 0

    def report(self) -> dict[str, int]:
        """Counts only, for reconciliation.json, the ledger and XCom: never a reference."""
        return {
            **{name: int(self.counts[name]) for name in CLASSES},
            "sent": self.sent,
            "returned_rows": self.returned_rows,
            "conflicting_duplicates": self.conflicting_duplicates,
            "match_rate_ppm": self.match_rate_ppm,
        }


def _sent_keys(sent_refs: pa.Table, refers_to: str) -> tuple[pa.Array, pa.Array]:
    """Distinct sent references and the person each stands for (null for a family reference)."""
    if refers_to not in sent_refs.column_names:
        raise ReconciliationError(f"the delivery's reference list has no {refers_to!r} column")
    keys = sent_refs.column(refers_to).combine_chunks().cast(pa.string())
    if keys.null_count:
        raise ReconciliationError(f"the delivery's reference list has {keys.null_count} empty references")
    if refers_to == "person_ref":
        # Uniqueness is checked by the matching (_match_words: a unique 64-bit word per reference;
        # _match_arrow: by counting), which hashes the references anyway.
        return keys, sent_refs.column("person_id").combine_chunks().cast(pa.string())
    distinct = pc.unique(keys)
    return distinct, pa.nulls(len(distinct), pa.string())


def _first_occurrence(codes: np.ndarray) -> np.ndarray:
    """True where a group code appears for the first time.

    Codes are numbered in order of first appearance (Arrow's dictionary encoding and pandas' factorize both
    do this), so a row is a first occurrence exactly when its code exceeds every code before it.
    """
    if not len(codes):
        return np.zeros(0, dtype=np.bool_)
    seen_max = np.maximum.accumulate(codes)
    first = np.empty(len(codes), dtype=np.bool_)
    first[0] = True
    first[1:] = codes[1:] > seen_max[:-1]
    return first


@dataclass(frozen=True)
class _Matching:
    """Where each returned row's reference is in the sent list, and which rows repeat an earlier one."""

    #: Per returned row: the index of its reference in the sent list, or -1 when it was never sent.
    position: np.ndarray
    #: Per returned row: True on the first row (in file order) of its reference.
    first: np.ndarray
    #: The rows that are not their reference's first, and (same order) the first row of each one's reference.
    later: np.ndarray
    leader: np.ndarray


#: Characters of a reference's end that make its 64-bit lookup word (16 hex digits).
_KEY_CHARS: Final = 16


def _fixed_width_bytes(refs: pa.Array) -> np.ndarray | None:
    """The references' bytes as an ``(n, width)`` uint8 view when every one has the same length, else None
    (then the generic path runs). A view: nothing is copied."""
    n = len(refs)
    if n == 0 or refs.null_count or refs.type != pa.string():
        return None
    offsets = np.frombuffer(refs.buffers()[1], dtype=np.int32)[refs.offset : refs.offset + n + 1]
    width = int(offsets[1] - offsets[0])
    if width < _KEY_CHARS or int(offsets[-1] - offsets[0]) != n * width:
        return None
    if not np.all(np.diff(offsets) == width):
        return None
    data = np.frombuffer(refs.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + n * width]
    return data.reshape(n, width)


def _word_key(chars: np.ndarray) -> np.ndarray | None:
    """One 64-bit word per reference to look it up by: its last 16 characters decoded from hex, or None
    when they are not hex (then the generic path runs).

    A reference ends in its MAC in hex (share.pseudonymise), which is uniformly distributed, so these
    words are unique in practice; equal references always have equal words. Nothing relies on that
    uniqueness: every match the words suggest is checked byte for byte (_match_words).
    """
    tail = np.ascontiguousarray(chars[:, chars.shape[1] - _KEY_CHARS :])
    try:
        return np.frombuffer(binascii.unhexlify(tail.data), dtype="<u8")
    except (binascii.Error, ValueError):
        return None


def _match_words(refs: pa.Array, keys: pa.Array) -> _Matching | None:
    """Matching fixed-width references by one hash lookup of a 64-bit word each (fast), or None when it
    cannot be used or two different references share a word (the generic path then decides)."""
    returned, sent = _fixed_width_bytes(refs), _fixed_width_bytes(keys)
    if returned is None or sent is None or returned.shape[1] != sent.shape[1]:
        return None
    returned_key, sent_key = _word_key(returned), _word_key(sent)
    if returned_key is None or sent_key is None:
        return None
    index = pd.Index(sent_key)
    # Not unique: two sent references share a word, or one was sent twice; the generic path tells which.
    if not index.is_unique:
        return None
    position = index.get_indexer(returned_key).astype(np.int64)
    found = position >= 0
    # A word not found is a reference not sent (equal references have equal words); a word found is only a
    # candidate until its bytes are compared, so a collision can never change a class. The rows not found
    # are copied across so that one comparison of the whole byte block checks every candidate.
    candidates = np.take(sent, np.maximum(position, 0), axis=0)
    unsent = np.flatnonzero(~found)
    candidates[unsent] = returned[unsent]
    if np.not_equal(candidates, returned).any():
        return None
    return _group(refs, position, found, len(keys))


def _group(refs: pa.Array, position: np.ndarray, found: np.ndarray, sent: int) -> _Matching:
    """Group the returned rows by reference, given each row's verified position in the sent list."""
    group = position.copy()
    unsent = np.flatnonzero(~found)
    if len(unsent):
        # The few references never sent are grouped among themselves by their strings.
        encoded = pc.dictionary_encode(refs.take(pa.array(unsent)))
        group[unsent] = sent + np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    first = np.ones(len(group), dtype=np.bool_)
    repeated = np.flatnonzero(np.bincount(group, minlength=1)[group] > 1)
    # Rows of a reference that appears more than once, by reference and then file order (stable sort).
    ordered = repeated[np.argsort(group[repeated], kind="stable")]
    starts = np.ones(len(ordered), dtype=np.bool_)
    starts[1:] = group[ordered[1:]] != group[ordered[:-1]]
    leaders = ordered[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    later = ordered[~starts]
    first[later] = False
    return _Matching(position=position, first=first, later=later, leader=leaders[~starts])


def _match_arrow(refs: pa.Array, keys: pa.Array) -> _Matching:
    """Matching by hashing the strings (any reference shape)."""
    if pc.count_distinct(keys).as_py() != len(keys):
        raise ReconciliationError("the delivery's reference list names a reference twice")
    encoded = pc.dictionary_encode(refs)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    in_sent = pc.fill_null(pc.index_in(encoded.dictionary, value_set=keys), -1)
    first = _first_occurrence(codes)
    later = np.flatnonzero(~first)
    return _Matching(
        position=np.asarray(in_sent.to_numpy(zero_copy_only=False), np.int64)[codes],
        first=first,
        later=later,
        # Codes are numbered in order of first appearance, so code c's first row is the c-th first row.
        leader=np.flatnonzero(first)[codes[later]],
    )


def _conflicts(returned: pa.Table, matching: _Matching) -> int:
    """References whose later rows differ from their first row in any column."""
    later, leader = matching.later, matching.leader
    if not len(later):
        return 0
    differs = np.zeros(len(later), dtype=np.bool_)
    for column in returned.columns:
        a = column.take(pa.array(later))
        b = column.take(pa.array(leader))
        same = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        differs |= ~np.asarray(pc.or_(same, both_null).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return len(np.unique(leader[differs]))


def _classes(codes: pa.Array | np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(CLASSES, pa.string()))


def reconcile(returned: pa.Table, sent_refs: pa.Table, agreement: Agreement) -> Reconciliation:
    """Classify every reference of a validated return against the delivery's ``references.parquet``."""
    spec = agreement.returns
    if spec.reference is None:
        raise ReconciliationError(f"{agreement.id}: a receipt has no references to reconcile")
    keys, persons = _sent_keys(sent_refs, spec.reference.refers_to)
    refs = returned.column(spec.reference.column).combine_chunks()
    if refs.null_count:
        raise ReconciliationError("the return has empty references (it was not validated)")
    n = len(refs)
    matching = _match_words(refs, keys) or _match_arrow(refs, keys)
    first = matching.first
    row_position = matching.position
    known = row_position >= 0

    rejected = np.zeros(n, dtype=np.bool_)
    if spec.status is not None and spec.status.rejected:
        in_rejected = pc.is_in(returned.column(spec.status.column), pa.array(spec.status.rejected))
        rejected = np.asarray(pc.fill_null(in_rejected, False).to_numpy(zero_copy_only=False), np.bool_)
    row_class = np.full(n, _CODE["duplicate"], dtype=np.int8)
    row_class[first & ~known] = _CODE["unexpected"]
    row_class[first & known & rejected] = _CODE["rejected_by_partner"]
    row_class[first & known & ~rejected] = _CODE["matched"]

    answered = np.zeros(len(keys), dtype=np.bool_)
    answered[row_position[first & known]] = True
    no_trace = pa.array(np.flatnonzero(~answered))
    # A null index takes a null: unexpected rows get no person.
    person = pc.take(persons, pa.array(row_position, pa.int64(), mask=~known))
    classified = pa.concat_tables(
        [
            pa.table(
                [refs, person, _classes(row_class), pa.array(np.arange(2, n + 2, dtype=np.int64))],
                schema=CLASSIFIED_SCHEMA,
            ),
            pa.table(
                [
                    keys.take(no_trace),
                    persons.take(no_trace),
                    _classes(np.full(len(no_trace), _CODE["no_trace"], dtype=np.int8)),
                    pa.nulls(len(no_trace), pa.int64()),
                ],
                schema=CLASSIFIED_SCHEMA,
            ),
        ]
    )
    tally = np.bincount(row_class, minlength=len(CLASSES))
    counts: dict[str, int] = {name: int(tally[i]) for i, name in enumerate(CLASSES)}
    counts["no_trace"] = len(no_trace)
    _check_invariant(counts, sent=len(keys), rows=n, classified=classified.num_rows)

    matched = pa.array(row_class == _CODE["matched"])
    accepted = returned.filter(matched).append_column("person_id", person.filter(matched))
    return Reconciliation(
        counts=counts,
        sent=len(keys),
        returned_rows=n,
        conflicting_duplicates=_conflicts(returned, matching),
        classified=classified,
        accepted=accepted,
    )


def write_classified(classified: pa.Table, path: UPath | Path) -> None:
    """Write ``classified.parquet`` atomically, uncompressed and without dictionaries or statistics.

    It is written once per return and read whole (by reports and audits, never filtered), and its
    references are random hex that compresses poorly, so compression would cost more time than it saves.
    """
    write_parquet(classified, path, compression="none", use_dictionary=False, write_statistics=False)


def _check_invariant(counts: Mapping[str, int], *, sent: int, rows: int, classified: int) -> None:
    per_sent = counts["matched"] + counts["rejected_by_partner"] + counts["no_trace"]
    per_row = counts["matched"] + counts["rejected_by_partner"] + counts["unexpected"] + counts["duplicate"]
    total = sum(counts[name] for name in CLASSES)
    if per_sent != sent or per_row != rows or total != classified:
        raise ReconciliationError(
            f"reconciliation invariant broken: {dict(counts)} for {sent} sent, {rows} returned rows, "
            f"{classified} classified"
        )


def partner_flags(
    accepted: pa.Table, agreement: Agreement, file_sha256: str, *, answered_at: datetime | None
) -> pa.Table:
    """The partner flags in ``accepted`` (matched rows with ``person_id``), by ``agreement.returns.flags``,
    and one marker row (null ``sub_criterion``) per matched person: the return's answers.

    A boolean column flags the row when true (no evidence date); a date column when it holds a date, which
    is the evidence date (agreements.ReturnFlag). Every row carries ``answered_at`` (see
    PARTNER_FLAGS_SCHEMA). An agreement without flags gives an empty table: its answers could supersede
    nothing, and flags need a return keyed on person_ref, so only then is every person_id known.
    """
    if not agreement.returns.flags:
        return PARTNER_FLAGS_SCHEMA.empty_table()
    if answered_at is not None:
        # Parquet keeps the instant; a naive time from an old receipt is read as UTC, as share.py writes it.
        answered_at = answered_at.astimezone(UTC) if answered_at.tzinfo else answered_at.replace(tzinfo=UTC)
    answered = pa.scalar(answered_at, PARTNER_FLAGS_SCHEMA.field("answered_at").type)

    def rows(person: pa.Array | pa.ChunkedArray, sub_criterion: str | None, evidence: pa.Array) -> pa.Table:
        n = len(person)
        return pa.table(
            {
                "person_id": person,
                "sub_criterion": pa.repeat(pa.scalar(sub_criterion, pa.string()), n),
                "evidence_date": evidence,
                "partner": pa.repeat(pa.scalar(agreement.partner.code, pa.string()), n),
                "agreement_id": pa.repeat(pa.scalar(agreement.id, pa.string()), n),
                "file_sha256": pa.repeat(pa.scalar(file_sha256, pa.string()), n),
                "answered_at": pa.repeat(answered, n),
            },
            schema=PARTNER_FLAGS_SCHEMA,
        )

    person = accepted.column("person_id")
    parts: list[pa.Table] = []
    for flag in agreement.returns.flags:
        values = accepted.column(flag.column)
        if pa.types.is_boolean(values.type):
            mask = pc.fill_null(values, False)
            evidence = pa.nulls(len(values), pa.date32())
        else:
            mask = pc.is_valid(values)
            evidence = values.cast(pa.date32())
        parts.append(rows(person.filter(mask), flag.sub_criterion, pc.filter(evidence, mask)))
    # Markers for every matched person, not only the unflagged: simpler, and the engine takes a person's
    # latest answer from all of the partner's rows, so a marker beside flags changes nothing.
    parts.append(rows(person, None, pa.nulls(len(person), pa.date32())))
    return pa.concat_tables(parts)
