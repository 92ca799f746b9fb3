"""How each fault changes an answer, its CSV or its ciphertext (what each leaves: see ``faults``).

All choices come from :mod:`sf_demo.partner_simulator.determinism`, so a fault hits the same rows every time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sf_demo.partner_simulator.answers import Answer, Row
from sf_demo.partner_simulator.determinism import digest, hex_digits, pick, share_of
from sf_demo.partner_simulator.faults import Fault
from supporting_families.config import Agreement

MISSING_SHARE = 0.05
DUPLICATE_SHARE = 0.03
UNEXPECTED_SHARE = 0.01

_REFERENCE_VERSION = re.compile(r"^(v[1-9][0-9]*)-")


@dataclass(frozen=True)
class RowFaults:
    """The rows to write after the row-level faults, and what the faults did (counts)."""

    rows: list[Row]
    dropped: int = 0
    duplicated: int = 0
    unexpected: int = 0


def apply_row_faults(
    answer: Answer,
    faults: frozenset[Fault],
    agreement: Agreement,
    *,
    seed: int,
    delivery_id: str,
    sent_references: list[str],
) -> RowFaults:
    """Apply ``missing_rows``, ``duplicates`` and ``unexpected_references`` (in that order) to ``answer``."""
    if answer.kind == "receipt":
        return _receipt_faults(answer, faults, agreement, seed=seed, delivery_id=delivery_id)
    rows = list(answer.rows)
    keys = [str(r[answer.key_index]) for r in rows]
    dropped = duplicated = unexpected = 0
    if Fault.MISSING_ROWS in faults and rows:
        gone = set(pick(keys, share_of(len(rows), MISSING_SHARE), seed, f"missing_rows:{delivery_id}"))
        rows = [r for i, r in enumerate(rows) if i not in gone]
        keys = [k for i, k in enumerate(keys) if i not in gone]
        dropped = len(gone)
    if Fault.DUPLICATES in faults and rows:
        again = set(pick(keys, share_of(len(rows), DUPLICATE_SHARE), seed, f"duplicates:{delivery_id}"))
        # The copy follows its original, as a join that fanned out would leave it.
        rows = [copy for i, r in enumerate(rows) for copy in ((r, r) if i in again else (r,))]
        duplicated = len(again)
    if Fault.UNEXPECTED_REFERENCES in faults:
        extra = _unexpected_rows(answer, rows, agreement, seed, delivery_id, sent_references)
        rows = sorted([*rows, *extra], key=lambda r: str(r[answer.key_index]))
        unexpected = len(extra)
    return RowFaults(rows, dropped, duplicated, unexpected)


def _unexpected_rows(
    answer: Answer,
    rows: list[Row],
    agreement: Agreement,
    seed: int,
    delivery_id: str,
    sent_references: list[str],
) -> list[Row]:
    """Rows for references that were never sent, shaped like the agreement's references (same version)."""
    sent = set(sent_references)
    version = next((m.group(1) for r in sent_references if (m := _REFERENCE_VERSION.match(r))), "v1")
    count = share_of(max(len(rows), 1), UNEXPECTED_SHARE)
    template = _template_row(answer, agreement)
    extra: list[Row] = []
    for i in range(count * 2 + 8):  # a collision with a sent reference is astronomically unlikely
        if len(extra) == count:
            break
        reference = f"{version}-{hex_digits(seed, 32, 'unexpected_references', delivery_id, str(i))}"
        if reference in sent:
            continue
        base = rows[len(extra) % len(rows)] if rows else template
        extra.append(tuple(reference if j == answer.key_index else v for j, v in enumerate(base)))
    return extra


def _template_row(answer: Answer, agreement: Agreement) -> Row:
    """A row for an empty answer: the first matched status where there is a status column, else empty."""
    status = agreement.returns.status
    return tuple(
        status.matched[0] if status is not None and name == status.column else None for name in answer.columns
    )


def _receipt_faults(
    answer: Answer, faults: frozenset[Fault], agreement: Agreement, *, seed: int, delivery_id: str
) -> RowFaults:
    rows = list(answer.rows)
    dropped = duplicated = unexpected = 0
    count_at = answer.key_index
    if Fault.MISSING_ROWS in faults and rows:
        # ONS "loaded" fewer rows than the delivery held: its receipt understates the count.
        value = rows[0][count_at]
        received = value if isinstance(value, int) else 0
        dropped = min(received, share_of(received, MISSING_SHARE))
        rows[0] = tuple(received - dropped if j == count_at else v for j, v in enumerate(rows[0]))
    if Fault.DUPLICATES in faults and rows:
        rows = [rows[0], *rows]
        duplicated = 1
    if Fault.UNEXPECTED_REFERENCES in faults and rows:
        # A receipt for a delivery the council never made.
        never_sent = f"sf-{agreement.id}-d{hex_digits(seed, 16, 'unexpected_delivery', delivery_id)}.csv.gpg"
        receipt = agreement.returns.receipt
        sha_column = receipt.sha256_column if receipt is not None else ""
        fake: Row = tuple(
            never_sent
            if name == "delivery_file"
            else hex_digits(seed, 64, "unexpected_sha", delivery_id)
            if name == sha_column
            else value
            for name, value in zip(answer.columns, rows[0], strict=True)
        )
        rows.append(fake)
        unexpected = 1
    return RowFaults(rows, dropped, duplicated, unexpected)


def malform_csv(data: bytes, n_columns: int, seed: int, delivery_id: str) -> bytes:
    """A ragged row (one field too many) and a last line whose opening quote is never closed."""
    lines = data.rstrip(b"\n").split(b"\n")
    header, body = lines[0], lines[1:]
    if body:
        at = int.from_bytes(digest(seed, "malformed_csv", delivery_id)[:4], "big") % len(body)
        body[at] = body[at] + b",ragged"
    else:
        body.append(b"," * n_columns)  # n_columns + 1 empty fields
    body.append(b'"unterminated' + b"," * max(n_columns - 1, 0))
    return b"\n".join([header, *body]) + b"\n"


def tamper(path: Path, seed: int, delivery_id: str) -> int:
    """Flip one byte among the last 20 of the file; returns its offset.

    The encrypted, integrity-protected packet (SEIPD) is the message's last, and its last 20 bytes are the
    encrypted SHA-1 of its modification detection code (RFC 4880 5.13-5.14): the flip leaves the signed data
    intact and must be caught by the integrity check, the check that stops an attacker who edits a file.
    """
    data = bytearray(path.read_bytes())
    if len(data) < 64:
        raise ValueError(f"{path.name} is too short to be an encrypted message")
    h = int.from_bytes(digest(seed, "tampered_ciphertext", delivery_id)[:8], "big")
    offset = len(data) - 1 - (h % 20)
    data[offset] ^= (h >> 32) % 255 + 1  # never zero, so the byte always changes
    path.write_bytes(bytes(data))
    return offset
