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
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.agreements import Agreement
from supporting_families.store.schemas import PARTNER_FLAGS_SCHEMA

__all__ = [
    "CLASSES",
    "CLASSIFIED_SCHEMA",
    "PARTNER_FLAGS_SCHEMA",
    "Reconciliation",
    "ReconciliationError",
    "partner_flags",
    "reconcile",
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
        # Uniqueness is checked by the matching (_match_words: a unique 64-bit key per reference;
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
    """Returned rows grouped by reference, and where each group's reference is in the sent list."""

    #: Per returned row: its reference's group, numbered in order of first appearance.
    codes: np.ndarray
    #: Per group: the index of its reference in the sent list, or -1 when it was never sent.
    sent_position: np.ndarray


def _reference_words(refs: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A reference ``v<N>-<32 hex>`` as three uint64 words (prefix, MAC high, MAC low), or None when the
    strings are not all of one length (then the generic path runs).

    A validated reference's last 32 characters are the 128-bit MAC in hex; equal strings of equal length
    are equal words, so matching can run on integers instead of hashing strings.
    """
    n = len(refs)
    if n == 0 or refs.null_count:
        return None
    offsets = np.frombuffer(refs.buffers()[1], dtype=np.int32)[refs.offset : refs.offset + n + 1]
    width = int(offsets[1] - offsets[0])
    if not 34 <= width <= 40 or int(offsets[-1] - offsets[0]) != n * width:
        return None
    if not np.all(np.diff(offsets) == width):
        return None
    data = np.frombuffer(refs.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + n * width]
    chars = data.reshape(n, width)
    try:
        mac = np.frombuffer(
            binascii.unhexlify(np.ascontiguousarray(chars[:, width - 32 :]).tobytes()), dtype="<u8"
        ).reshape(n, 2)
    except (binascii.Error, ValueError):
        return None
    prefix = np.zeros((n, 8), dtype=np.uint8)
    prefix[:, : width - 32] = chars[:, : width - 32]
    return prefix.view("<u8")[:, 0], mac[:, 0], mac[:, 1]


def _mix(words: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    # One 64-bit key per reference for hashing; every match it suggests is then checked on all three words.
    prefix, high, low = words
    mixed: np.ndarray = (
        high ^ (low * np.uint64(0x9E3779B97F4A7C15)) ^ (prefix * np.uint64(0xC2B2AE3D27D4EB4F))
    )
    return mixed


def _match_words(refs: pa.Array, keys: pa.Array) -> _Matching | None:
    """Matching on integer words (fast); None when it cannot be used or a 64-bit key collided."""
    returned, sent = _reference_words(refs), _reference_words(keys)
    if returned is None or sent is None:
        return None
    codes, uniques = pd.factorize(_mix(returned))
    codes = codes.astype(np.int64)
    first_rows = np.flatnonzero(_first_occurrence(codes))
    same_group = all(np.array_equal(w, w[first_rows][codes]) for w in returned)
    sent_index = pd.Index(_mix(sent))
    # Not unique: a 64-bit collision or a reference sent twice; the generic path tells them apart.
    if not same_group or not sent_index.is_unique:
        return None
    position = sent_index.get_indexer(uniques).astype(np.int64)
    found = position >= 0
    for r, s in zip(returned, sent, strict=True):
        if not np.array_equal(r[first_rows][found], s[position[found]]):
            return None
    return _Matching(codes=codes, sent_position=position)


def _match_arrow(refs: pa.Array, keys: pa.Array) -> _Matching:
    """Matching by hashing the strings (any reference shape)."""
    if pc.count_distinct(keys).as_py() != len(keys):
        raise ReconciliationError("the delivery's reference list names a reference twice")
    encoded = pc.dictionary_encode(refs)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    position = pc.fill_null(pc.index_in(encoded.dictionary, value_set=keys), -1)
    return _Matching(codes=codes, sent_position=np.asarray(position.to_numpy(zero_copy_only=False), np.int64))


def _conflicts(returned: pa.Table, codes: np.ndarray, first: np.ndarray) -> int:
    """References whose later rows differ from their first row in any column."""
    later = np.flatnonzero(~first)
    if not len(later):
        return 0
    firsts = np.flatnonzero(first)[codes[later]]
    differs = np.zeros(len(later), dtype=np.bool_)
    for column in returned.columns:
        a = column.take(pa.array(later))
        b = column.take(pa.array(firsts))
        same = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        differs |= ~np.asarray(pc.or_(same, both_null).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return len(np.unique(codes[later][differs]))


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
    codes = matching.codes
    first = _first_occurrence(codes)
    row_position = matching.sent_position[codes]
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
        conflicting_duplicates=_conflicts(returned, codes, first),
        classified=classified,
        accepted=accepted,
    )


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
