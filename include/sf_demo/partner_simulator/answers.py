"""What each simulated partner answers, from what it was sent and what it holds (the partner truth).

Matching semantics (the demo's stand-in for each partner's own specification):

DWP (``dwp``, benefits matching)
    DWP is sent person_ref, address lines, town, postcode and UPRN: no names, no dates of birth (DWP
    agreement, fields). It can therefore only match *addresses*, and it answers for the household: a
    reference's ``out_of_work_benefit`` is true when anyone DWP pays an out-of-work benefit to, in payment
    on ``as_of`` (award started on or before it), lives at that address; ``disability_benefit`` likewise for
    a disability-related out-of-work benefit (the agreement's purpose: "to confirm which families include
    adults who are receiving out of work benefits"). Every person sent at such an address, children
    included, gets the household's flags; where two families share an address both get them.
    The address is looked up by UPRN, or by normalised address line 1 and postcode when the council's row
    has no UPRN (no fall-back from a UPRN that DWP does not know: a UPRN is the property's identity).
    Outcomes per reference:

    * ``matched`` with true/false flags: DWP holds a customer with an award at the address (a PIP-only
      household, or an award starting after ``as_of``, gives false/false);
    * ``address_not_confirmed`` with empty flags: about 2.5% of references, whatever DWP holds,
      deterministic from the seed and the reference (DWP could not confirm the address on its records);
    * absent: DWP holds nobody at the address, so it has nothing to say. DWP returns only rows it matched
      or could not confirm, so for the council an absent reference is "no trace", a false flag is a
      confirmed "no benefit", and an empty flag is "unknown".

Metropolitan Police (``met-police``)
    The police are sent person_ref, given and family name, date of birth and postcode (Police agreement:
    "restricted to name, date of birth and postcode"). A reference matches the people the police hold with
    the same normalised given name, family name, date of birth and postcode (names: accents removed, upper
    case, letters only; postcodes: upper case, no spaces). The police disclose only what the purpose needs
    (UK GDPR Article 5(1)(c)): proven offences, cautions and ASB interventions dated within the last 12
    months to ``as_of`` (``[as_of minus one year, as_of]``, the generator's window), the most recent date of
    each kind; a community resolution is neither an offence nor a caution and is not disclosed. The age rule
    ("child/young person", under 25 at the event) is the council's criterion and is applied there. One row
    per matched reference with at least one date; everyone else is absent ("no trace").

ONS (``ons``)
    ONS answers with a receipt: the delivery's file name as received, the number of data rows it loaded,
    and the SHA-256 of the decrypted CSV (or of the encrypted file when the agreement's receipt says
    ``hash_of: ciphertext``).

The council's cells that would start a spreadsheet formula arrive with a leading apostrophe (package.py);
the partners strip it before matching, as a spreadsheet would.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sf_demo.partner_simulator.determinism import unit
from sf_demo.synthetic.dates import window_start
from supporting_families.config import Agreement

log = logging.getLogger(__name__)

Value = str | bool | int | date | None
Row = tuple[Value, ...]

DWP = "dwp"
POLICE = "met-police"
ONS = "ons"
PARTNERS = (DWP, POLICE, ONS)

MATCHED = "matched"
ADDRESS_NOT_CONFIRMED = "address_not_confirmed"
#: Share of references DWP cannot confirm (a share of the rows; 2-3% is what address matching
#: against benefit records typically leaves unresolved).
NOT_CONFIRMED_RATE = 0.025

OUT_OF_WORK = "out_of_work_benefit"
DISABILITY = "disability_benefit"
#: The police event types and the return column carrying the latest date of each.
POLICE_COLUMNS = {
    "proven_offence": "proven_offence_date",
    "caution": "caution_date",
    "asb_intervention": "asb_intervention_date",
}
DELIVERY_FILE = "delivery_file"

DWP_TRUTH = "dwp_benefits.parquet"
POLICE_TRUTH = "met_police_events.parquet"


class SimulatorError(RuntimeError):
    """The simulator cannot answer; the message names the agreement, file and rule, never a value."""


class UnsupportedPartner(SimulatorError):
    """The agreement's partner is not one the simulator can play."""


class DeliveryRefused(SimulatorError):
    """The partner refuses a delivery (wrong columns, unreadable CSV, not encrypted to its key)."""


@dataclass(frozen=True)
class Answer:
    """A partner's answer before any fault: rows in the agreement's return columns, and counts."""

    kind: Literal["per_reference", "receipt"]
    columns: tuple[str, ...]
    rows: list[Row]
    #: Index of the reference column (per-reference returns) or of the row-count column (receipts).
    key_index: int
    references_sent: int
    matched: int
    rejected: int

    @property
    def absent(self) -> int:
        """Sent references the answer does not mention ("no trace" for the council)."""
        return self.references_sent - self.matched - self.rejected if self.kind == "per_reference" else 0


# -- reading what the council sent ------------------------------------------------------------------------


def read_delivery(path: Path, agreement: Agreement) -> pa.Table:
    """The decrypted delivery as text columns; DeliveryRefused unless its header is exactly the agreement's
    fields (a partner must not take more than was agreed, nor work from less)."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in agreement.fields},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        # Arrow's messages can quote a cell; only the exception type is kept.
        raise DeliveryRefused(
            f"{agreement.id}: {path.name} is not a readable CSV ({type(exc).__name__})"
        ) from None
    if tuple(table.column_names) != agreement.fields:
        extra = [c for c in table.column_names if c not in agreement.fields]
        missing = [f for f in agreement.fields if f not in table.column_names]
        raise DeliveryRefused(
            f"{agreement.id}: {path.name} columns differ from the agreement "
            f"(extra {extra}, missing {missing})"
        )
    return table.combine_chunks()


def _text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Undo the council's formula neutralisation (a leading apostrophe before = + - @ tab CR)."""
    return pc.replace_substring_regex(pc.fill_null(column, ""), r"^'([=+\-@\t\r])", r"\1")


def name_key(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Accents removed, upper case, letters only: ``Zoë O'Brien-Smith`` and ``ZOE OBRIEN SMITH`` agree."""
    decomposed = pc.utf8_normalize(_text(column), form="NFKD")
    return pc.replace_substring_regex(
        pc.utf8_upper(pc.replace_substring_regex(decomposed, r"\pM", "")), r"[^A-Z]", ""
    )


def postcode_key(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.replace_substring_regex(pc.utf8_upper(_text(column)), r"[^A-Z0-9]", "")


def address_key(
    line_1: pa.ChunkedArray | pa.Array, postcode: pa.ChunkedArray | pa.Array
) -> pa.ChunkedArray | pa.Array:
    """Address line 1 (upper case, punctuation and runs of spaces as one space) and the postcode key."""
    words = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(pc.utf8_upper(_text(line_1)), r"[^A-Z0-9]+", " ")
    )
    return pc.binary_join_element_wise(words, postcode_key(postcode), "|")


def uprn_key(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Digits as text without leading zeros: ``000100023`` and ``100023`` are one property."""
    return pc.utf8_ltrim(pc.replace_substring_regex(_text(column), r"\s", ""), characters="0")


def _iso(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.strftime(pc.cast(column, pa.timestamp("s")), format="%Y-%m-%d")


# -- answers ----------------------------------------------------------------------------------------------


def _select(agreement: Agreement, values: dict[str, list[Value]]) -> tuple[tuple[str, ...], list[Row]]:
    """The rows in the agreement's return columns; SimulatorError when the agreement asks for a column this
    partner does not produce (the simulated partner's specification is fixed, like a real partner's)."""
    columns = tuple(c.name for c in agreement.returns.columns)
    unknown = [c for c in columns if c not in values]
    if unknown:
        raise SimulatorError(
            f"{agreement.id}: the simulated {agreement.partner.code} cannot fill return columns {unknown}"
        )
    return columns, list(zip(*(values[c] for c in columns), strict=True))


def _reference_column(agreement: Agreement) -> str:
    reference = agreement.returns.reference
    if reference is None:
        raise SimulatorError(f"{agreement.id}: a {agreement.partner.code} return needs a reference column")
    return reference.column


def _status_column(agreement: Agreement) -> str:
    status = agreement.returns.status
    if status is None or MATCHED not in status.matched or ADDRESS_NOT_CONFIRMED not in status.rejected:
        raise SimulatorError(
            f"{agreement.id}: the simulated DWP needs a status column with {MATCHED!r} matched and "
            f"{ADDRESS_NOT_CONFIRMED!r} rejected"
        )
    return status.column


def _households(truth: pa.Table, key: pa.ChunkedArray | pa.Array, as_of: date) -> pa.Table:
    """Per address key: whether anyone there is paid an out-of-work (or disability) benefit on ``as_of``."""
    in_payment = pc.less_equal(truth["award_start_date"], pa.scalar(as_of, pa.date32()))
    table = pa.table(
        {
            "key": key,
            "oow": pc.and_(pc.fill_null(truth["out_of_work"], False), in_payment),
            "dis": pc.and_(pc.fill_null(truth["disability_related"], False), in_payment),
        }
    )
    table = table.filter(pc.not_equal(table["key"], ""))
    grouped = table.group_by("key").aggregate([("oow", "any"), ("dis", "any")])
    return grouped.rename_columns(["key", "oow", "dis"])


def dwp_answer(sent: pa.Table, truth: pa.Table, agreement: Agreement, *, as_of: date, seed: int) -> Answer:
    """DWP's household benefit flags per reference (see the module's docstring for the rules)."""
    ref_column, status_column = _reference_column(agreement), _status_column(agreement)
    by_uprn = _households(truth, uprn_key(truth["uprn"]), as_of)
    by_address = _households(truth, address_key(truth["address_line_1"], truth["postcode"]), as_of)
    refs = sent["person_ref"]
    uprns = uprn_key(sent["uprn"])
    keys = pc.if_else(pc.equal(uprns, ""), address_key(sent["address_line_1"], sent["postcode"]), uprns)
    use_address = pc.equal(uprns, "")
    lookup = pa.table({"i": pa.array(range(sent.num_rows), pa.int64()), "key": keys, "addr": use_address})
    found_uprn = lookup.filter(pc.invert(lookup["addr"])).join(by_uprn, "key", join_type="inner")
    found_addr = lookup.filter(lookup["addr"]).join(by_address, "key", join_type="inner")
    found = {
        int(i): (bool(o), bool(d))
        for part in (found_uprn, found_addr)
        for i, o, d in zip(
            part["i"].to_pylist(), part["oow"].to_pylist(), part["dis"].to_pylist(), strict=True
        )
    }
    values: dict[str, list[Value]] = {ref_column: [], status_column: [], OUT_OF_WORK: [], DISABILITY: []}
    matched = rejected = 0
    for i, ref in enumerate(refs.to_pylist()):
        if unit(seed, "address_not_confirmed", str(ref)) < NOT_CONFIRMED_RATE:
            row: tuple[Value, Value, Value] = (ADDRESS_NOT_CONFIRMED, None, None)
            rejected += 1
        elif i in found:
            row = (MATCHED, *found[i])
            matched += 1
        else:
            continue  # DWP holds nobody at the address: nothing to say
        values[ref_column].append(ref)
        values[status_column].append(row[0])
        values[OUT_OF_WORK].append(row[1])
        values[DISABILITY].append(row[2])
    columns, rows = _select(agreement, values)
    key_index = columns.index(ref_column)
    rows.sort(key=lambda r: str(r[key_index]))
    return Answer("per_reference", columns, rows, key_index, sent.num_rows, matched, rejected)


def _police_events(truth: pa.Table, as_of: date) -> pa.Table:
    """Per identity key and event kind, the latest date within the 12 months to ``as_of``."""
    start = pa.scalar(window_start(as_of), pa.date32())
    end = pa.scalar(as_of, pa.date32())
    when = truth["event_date"]
    keep = pc.and_(
        pc.and_(pc.greater_equal(when, start), pc.less_equal(when, end)),
        pc.is_in(truth["event_type"], pa.array(list(POLICE_COLUMNS))),
    )
    kept = truth.filter(pc.fill_null(keep, False))
    identity = pc.binary_join_element_wise(
        name_key(kept["given_name"]),
        name_key(kept["family_name"]),
        pc.fill_null(_iso(kept["date_of_birth"]), ""),
        postcode_key(kept["postcode"]),
        "|",
    )
    table = pa.table({"key": identity, "type": kept["event_type"], "date": kept["event_date"]})
    latest = table.group_by(["key", "type"]).aggregate([("date", "max")])
    return latest.rename_columns(["key", "type", "date"])


def police_answer(sent: pa.Table, truth: pa.Table, agreement: Agreement, *, as_of: date) -> Answer:
    """The police's latest offence, caution and ASB dates per matched reference (see the module docstring)."""
    ref_column = _reference_column(agreement)
    events = _police_events(truth, as_of)
    latest: dict[str, dict[str, date]] = {}
    for key, kind, when in zip(
        events["key"].to_pylist(), events["type"].to_pylist(), events["date"].to_pylist(), strict=True
    ):
        latest.setdefault(str(key), {})[POLICE_COLUMNS[str(kind)]] = when
    identity = pc.binary_join_element_wise(
        name_key(sent["given_name"]),
        name_key(sent["family_name"]),
        pc.utf8_trim_whitespace(_text(sent["date_of_birth"])),
        postcode_key(sent["postcode"]),
        "|",
    )
    values: dict[str, list[Value]] = {ref_column: [], **{c: [] for c in POLICE_COLUMNS.values()}}
    for ref, key in zip(sent["person_ref"].to_pylist(), identity.to_pylist(), strict=True):
        dates = latest.get(str(key))
        if not dates:
            continue
        values[ref_column].append(ref)
        for column in POLICE_COLUMNS.values():
            values[column].append(dates.get(column))
    columns, rows = _select(agreement, values)
    key_index = columns.index(ref_column)
    rows.sort(key=lambda r: str(r[key_index]))
    return Answer("per_reference", columns, rows, key_index, sent.num_rows, len(rows), 0)


def ons_receipt(agreement: Agreement, *, delivery_file: str, rows_received: int, sha256: str) -> Answer:
    """ONS's receipt: one row naming the file, the rows it loaded and the hash the agreement asks for."""
    receipt = agreement.returns.receipt
    if receipt is None:
        raise SimulatorError(
            f"{agreement.id}: the simulated ONS answers with a receipt; the agreement has none"
        )
    values: dict[str, list[Value]] = {
        DELIVERY_FILE: [delivery_file],
        receipt.row_count_column: [rows_received],
        receipt.sha256_column: [sha256],
    }
    columns, rows = _select(agreement, values)
    return Answer("receipt", columns, rows, columns.index(receipt.row_count_column), rows_received, 0, 0)


# -- writing ----------------------------------------------------------------------------------------------


def _cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def render_csv(columns: Sequence[str], rows: Sequence[Row]) -> bytes:
    """UTF-8 CSV with a header, RFC 4180 quoting where needed, ``\\n`` line ends (as the council writes),
    booleans ``true``/``false``, dates ISO 8601, empty cells for nulls."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8")
