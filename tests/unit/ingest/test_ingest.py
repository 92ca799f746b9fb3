"""Ingest: strict reading, lazy row validation, the curated contract, quarantine, idempotency, no leaks.

The synthetic borough is handled as real personal data: assertions compare counts, booleans and rule names,
never values, so a failure prints no name, date of birth, postcode, address or UPRN.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upath import UPath

from sf_demo.synthetic import (
    Borough,
    DirtConfig,
    agency_extracts,
    generate_borough,
    read_extract,
    write_borough,
)
from sf_demo.synthetic.sources import encode_extract
from supporting_families.config import SourceSpec, load_sources
from supporting_families.ingest import (
    FILE_RULES,
    ROW_RULES,
    ExtractRejected,
    curated_path,
    curated_schema,
    ingest_extract,
    ingest_source,
    pending_extracts,
    quarantine_dir,
    read_report,
    report_path,
)
from supporting_families.ingest.read import read_extract_file
from supporting_families.ingest.validate import validate_rows
from supporting_families.store import REGISTER_SCHEMA

AS_OF = date(2025, 3, 31)
SOURCES = load_sources()
NAMES = list(SOURCES.sources)
#: Personal fields whose values must never appear in an exception, a log line or a report.
PERSONAL = (
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line_1",
    "address_line_2",
    "postcode",
    "uprn",
)


def _count(mask: Any) -> int:
    """How many rows a mask selects: assertions compare this number, never the rows."""
    if isinstance(mask, pa.ChunkedArray | pa.Array):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return int(np.asarray(mask, dtype=bool).sum())


def _mismatches(left: Any, right: Any) -> int:
    """Positions where two columns differ (a null on one side only counts as a difference)."""
    equal = pc.equal(left, right)
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    return _count(pc.invert(pc.or_(pc.fill_null(equal, False), both_null)))


@pytest.fixture(scope="module")
def borough() -> Borough:
    return generate_borough(1500, seed=3, as_of=AS_OF, dirt=DirtConfig.clean())


def _store(tmp: Path, borough: Borough) -> UPath:
    root = UPath(tmp.as_uri())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    # A voluntary-sector agency's extract lands once collect_<source> has verified it
    # (tests/integration/exchange/test_agency.py); from landing/ on, ingest takes it like any other.
    for spec in SOURCES.sources.values():
        if spec.inbound is not None:
            sent = agency_extracts(root / "demo") / spec.path_for(borough.as_of)
            landed = root / "landing" / spec.path_for(borough.as_of)
            landed.parent.mkdir(parents=True, exist_ok=True)
            landed.write_bytes(sent.read_bytes())
    return root


@pytest.fixture(scope="module")
def ingested(borough: Borough, tmp_path_factory: pytest.TempPathFactory) -> UPath:
    root = _store(tmp_path_factory.mktemp("store"), borough)
    for spec in SOURCES.sources.values():
        ingest_source(root, spec)
    return root


def _file(spec: SourceSpec) -> str:
    return spec.path_for(AS_OF).rsplit("/", 1)[1]


def _curated(root: UPath, spec: SourceSpec) -> pa.Table:
    with curated_path(root, spec, AS_OF).open("rb") as fh:
        return pq.read_table(fh)


# --- clean data: everything accepted, in the contract's shape ---------------------------------------------


@pytest.mark.parametrize("source", NAMES, ids=str)
def test_clean_extract_is_accepted_whole(ingested: UPath, borough: Borough, source: str) -> None:
    spec = SOURCES.sources[source]
    report = read_report(ingested, spec, _file(spec))
    assert report is not None
    assert report.status == "ingested"
    assert report.received == borough.extracts[source].num_rows
    assert report.accepted == report.received and report.rejected == 0
    assert report.rules_broken == {}
    landed = (ingested / "landing" / spec.path_for(AS_OF)).read_bytes()
    assert report.file_sha256 == hashlib.sha256(landed).hexdigest()
    assert _curated(ingested, spec).num_rows == report.accepted
    assert not quarantine_dir(ingested, spec, _file(spec)).exists()


_MEASURE_TYPES = {
    "code": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("s"),
    "decimal": pa.float64(),
    "integer": pa.int64(),
    "string": pa.string(),
}


def _contract(spec: SourceSpec) -> list[tuple[str, pa.DataType]]:
    """The curated contract (docs/STORE.md), written out independently of the implementation."""
    register = {f.name: f.type for f in REGISTER_SCHEMA}
    out = [
        ("source", pa.string()),
        ("extract_date", pa.date32()),
        ("file_sha256", pa.string()),
        ("row_number", pa.int64()),
        ("record_id", pa.string()),
    ]
    out += [(name, register[name]) for name in register if name in spec.by_standard]
    out += [(c.standard, _MEASURE_TYPES[c.type]) for c in spec.columns if not c.is_identity]
    return out


@pytest.mark.parametrize("source", NAMES, ids=str)
def test_curated_schema_is_the_contract(ingested: UPath, source: str) -> None:
    spec = SOURCES.sources[source]
    table = _curated(ingested, spec)
    assert [(f.name, f.type) for f in curated_schema(spec)] == _contract(spec)
    # Parquet has no seconds unit: whole-second datetimes are stored, and read back, as milliseconds.
    on_disk = [(n, pa.timestamp("ms") if t == pa.timestamp("s") else t) for n, t in _contract(spec)]
    assert [(f.name, f.type) for f in table.schema] == on_disk
    assert set(pc.unique(table.column("source")).to_pylist()) == {source}
    assert set(pc.unique(table.column("extract_date")).to_pylist()) == {AS_OF}
    rows = table.column("row_number").to_numpy()
    assert rows[0] == 2 and bool((np.diff(rows) == 1).all()), "row numbers are spreadsheet rows from 2"


def _title(values: Any) -> Any:
    return pc.utf8_title(pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"\s+", " "))


@pytest.mark.parametrize("source", NAMES, ids=str)
def test_curated_identity_is_the_truth_standardised(ingested: UPath, borough: Borough, source: str) -> None:
    # Clean data: each record carries its person's true identity, so after standardisation every identity
    # column equals the truth: dates in every declared format, cp1252 and BOM files, compact and lower-case
    # postcodes, UPRNs held as numbers, names held in upper case.
    spec = SOURCES.sources[source]
    table = _curated(ingested, spec)
    links = borough.links.filter(pc.equal(borough.links.column("source"), source))
    person_of = dict(
        zip(links.column("record_id").to_pylist(), links.column("person_id").to_pylist(), strict=True)
    )
    persons = borough.persons
    index = {p: i for i, p in enumerate(persons.column("person_id").to_pylist())}
    take = pa.array([index[person_of[r]] for r in table.column("record_id").to_pylist()])
    truth = persons.take(take)
    expected = {
        "given_name": _title(truth.column("given_name")),
        "family_name": _title(truth.column("family_name")),
        "date_of_birth": truth.column("date_of_birth"),
        "sex": truth.column("sex"),
        "address_line_1": pc.utf8_upper(truth.column("address_line_1")),
        "address_line_2": pc.utf8_upper(truth.column("address_line_2")),
        "town": pc.utf8_upper(truth.column("town")),
        "postcode": truth.column("postcode"),
        "uprn": truth.column("uprn"),
    }
    wrong = {
        name: _mismatches(table.column(name), expected[name])
        for name in spec.identity_fields
        if name in expected
    }
    assert wrong == dict.fromkeys(wrong, 0)


@pytest.mark.parametrize("source", NAMES, ids=str)
def test_curated_measures_agree_with_the_reference_reader(ingested: UPath, source: str) -> None:
    # synthetic.sources.read_extract reads a file with nothing but sources.yaml; the ingest must agree.
    spec = SOURCES.sources[source]
    table = _curated(ingested, spec)
    reference = read_extract((ingested / "landing" / spec.path_for(AS_OF)).read_bytes(), spec)
    wrong = {}
    for col in spec.columns:
        if col.is_identity:
            continue
        expected = reference.column(col.standard)
        if col.type == "decimal":
            # the nearest double to the written text, as parsing the text gives (decimal128 -> float64 rounds)
            expected = pc.cast(pc.cast(expected, pa.string()), pa.float64())
        wrong[col.standard] = _mismatches(table.column(col.standard), expected)
    assert wrong == dict.fromkeys(wrong, 0)


def test_the_quirks_under_test_are_really_in_the_files(ingested: UPath, borough: Borough) -> None:
    """Guards the tests above: the synthetic files carry each quirk the standardisation must undo."""
    housing = SOURCES.sources["housing"]
    raw = (ingested / "landing" / housing.path_for(AS_OF)).read_bytes()
    assert not raw.isascii(), "housing carries non-ASCII names, written in cp1252"
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    uprn = borough.extracts["housing"].column("UPRN")
    assert _count(pc.less(pc.utf8_length(uprn), 12)) > 0, "integer UPRNs lost their leading zeros"
    assert (
        _count(
            pc.equal(
                borough.extracts["housing"].column("SURNAME"),
                pc.utf8_upper(borough.extracts["housing"].column("SURNAME")),
            )
        )
        == borough.extracts["housing"].num_rows
    )
    assert _count(pc.match_substring(borough.extracts["neet"].column("postcode"), " ")) == 0, "compact"
    asb_pc = borough.extracts["asb"].column("subject_postcode")
    assert _count(pc.equal(asb_pc, pc.utf8_lower(asb_pc))) == len(asb_pc), "lower case postcodes"
    for source in ("childrens_social_care", "youth_offending"):
        spec = SOURCES.sources[source]
        assert (ingested / "landing" / spec.path_for(AS_OF)).read_bytes().startswith(b"\xef\xbb\xbf")
    formats = {s.date_format for s in SOURCES.sources.values()}
    assert {"%d/%m/%Y", "%d-%b-%Y", "%Y%m%d", "%Y-%m-%d"} <= formats


# --- files that cannot be read are quarantined whole -------------------------------------------------------


def _lines(data: bytes, spec: SourceSpec) -> list[bytes]:
    eol = b"\r\n" if spec.line_terminator == "crlf" else b"\n"
    return data.split(eol)


def _join(lines: list[bytes], spec: SourceSpec) -> bytes:
    return (b"\r\n" if spec.line_terminator == "crlf" else b"\n").join(lines)


def _reencode(borough: Borough, source: str, **changes: Any) -> bytes:
    spec = SOURCES.sources[source].model_copy(update=changes)
    return encode_extract(borough.extracts[source], spec)


def _with_accent(borough: Borough, source: str, column: str) -> pa.Table:
    table = borough.extracts[source]
    values = table.column(column).to_pylist()
    values[0] = "Zoë"
    return table.set_column(table.column_names.index(column), column, pa.array(values, pa.string()))


def _rename_header(data: bytes, spec: SourceSpec, old: str, new: str) -> bytes:
    lines = _lines(data, spec)
    lines[0] = lines[0].replace(old.encode(), new.encode(), 1)
    return _join(lines, spec)


def _ragged(data: bytes, spec: SourceSpec) -> bytes:
    lines = _lines(data, spec)
    lines[3] = lines[3] + spec.delimiter.encode() + b'"extra"'
    return _join(lines, spec)


def _drop_column(borough: Borough, source: str, column: str) -> bytes:
    spec = SOURCES.sources[source]
    table = borough.extracts[source]
    # encode_extract writes whatever columns it is given, so the header simply lacks one.
    return encode_extract(table.drop_columns([column]), spec)


def _add_column(borough: Borough, source: str) -> bytes:
    spec = SOURCES.sources[source]
    table = borough.extracts[source]
    return encode_extract(table.append_column("Notes", pa.array(["x"] * table.num_rows, pa.string())), spec)


MALFORMED: dict[str, tuple[str, Callable[[Borough, SourceSpec, bytes], bytes], str]] = {
    "cp1252-bytes-in-a-utf8-file": (
        "neet",
        lambda b, s, d: encode_extract(
            _with_accent(b, "neet", "forename"), s.model_copy(update={"encoding": "cp1252"})
        ),
        "encoding",
    ),
    "utf8-text-in-a-cp1252-file": (
        "housing",
        lambda b, s, d: (
            encode_extract(_with_accent(b, "housing", "FORENAME"), s).decode("cp1252").encode("utf-8")
        ),
        "encoding",
    ),
    "unexpected-bom": ("neet", lambda b, s, d: b"\xef\xbb\xbf" + d, "unexpected_bom"),
    "bom-in-a-cp1252-file": ("housing", lambda b, s, d: b"\xef\xbb\xbf" + d, "unexpected_bom"),
    "utf16-file": ("asb", lambda b, s, d: d.decode("utf-8").encode("utf-16"), "unexpected_bom"),
    "semicolons-for-commas": ("asb", lambda b, s, d: _reencode(b, "asb", delimiter=";"), "delimiter"),
    "semicolons-for-pipes": (
        "early_help",
        lambda b, s, d: _reencode(b, "early_help", delimiter=";"),
        "delimiter",
    ),
    "ragged-rows": ("early_help", lambda b, s, d: _ragged(d, s), "ragged_rows"),
    "ragged-quoted-rows": ("education_attendance", lambda b, s, d: _ragged(d, s), "ragged_rows"),
    "duplicate-headers": (
        "neet",
        lambda b, s, d: _rename_header(d, s, "surname", "forename"),
        "duplicate_headers",
    ),
    "missing-header": ("asb", lambda b, s, d: _drop_column(b, "asb", "subject_uprn"), "missing_headers"),
    "unknown-header": ("asb", lambda b, s, d: _add_column(b, "asb"), "unknown_headers"),
    "no-header": ("asb", lambda b, s, d: _join(_lines(d, s)[1:], s), "missing_headers"),
    "empty-file": ("asb", lambda b, s, d: b"", "empty_file"),
    "blank-file": ("housing", lambda b, s, d: b"\r\n\r\n", "empty_file"),
    "header-only": ("youth_offending", lambda b, s, d: _lines(d, s)[0] + b"\r\n", "header_only"),
    "unbalanced-quote": ("asb", lambda b, s, d: d[: d.rindex(b'"')], "unparseable"),
    "every-row-invalid": (
        "neet",
        lambda b, s, d: d.replace(b'"2025', b'"2O25').replace(b'"19', b'"1Q').replace(b'"20', b'"2Q'),
        "no_valid_rows",
    ),
}


def _personal_values(borough: Borough, file_name: str) -> set[str]:
    """Every personal value the files carry, as written, long enough to be recognisable."""
    values: set[str] = set()
    for source, table in borough.extracts.items():
        spec = SOURCES.sources[source]
        for col in spec.columns:
            if col.standard in PERSONAL:
                values.update(v for v in table.column(col.name).to_pylist() if v and len(v) >= 3)
    for name in PERSONAL:
        if name in borough.persons.column_names:
            values.update(str(v) for v in borough.persons.column(name).to_pylist() if v and len(str(v)) >= 3)
    values.update(v.upper() for v in list(values))
    # A date that is also the extract date is in every file name; it says nothing about a person there.
    return {v for v in values if v not in file_name and v not in "2025-03-31 31/03/2025 20250331"}


def _leaks(texts: Iterable[str], values: set[str]) -> int:
    """How many personal values appear as whole words in ``texts`` (a count: never the values)."""
    blob = "\n".join(texts)
    words = set(re.findall(r"[\w'./-]+", blob)) | set(re.findall(r"[\w']+(?: [\w']+)+", blob))
    tokens = set(re.findall(r"[A-Za-z0-9]+", blob))
    return sum(1 for v in values if v in words or v in tokens or (" " in v and v in blob))


def _store_texts(root: UPath, spec: SourceSpec, file_name: str) -> list[str]:
    """What the ingest writes that must hold no personal value: reports and reasons, not quarantined data."""
    out = []
    report = report_path(root, spec, file_name)
    if report.exists():
        out.append(report.read_text())
    folder = quarantine_dir(root, spec, file_name)
    for name in ("reason.json", "report.csv"):
        if (folder / name).exists():
            out.append((folder / name).read_text())
    return out


@pytest.mark.parametrize("case", list(MALFORMED), ids=str)
def test_malformed_file_is_quarantined_whole_naming_the_rule(
    case: str, borough: Borough, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, mutate, rule = MALFORMED[case]
    assert rule in FILE_RULES
    root = _store(tmp_path, borough)
    spec = SOURCES.sources[source]
    landed = root / "landing" / spec.path_for(AS_OF)
    data = mutate(borough, spec, landed.read_bytes())
    landed.write_bytes(data)
    name = _file(spec)

    with caplog.at_level(logging.DEBUG), pytest.raises(ExtractRejected) as info:
        ingest_extract(root, spec, name)

    error = info.value
    assert error.rule == rule, f"{case}: rejected by {error.rule}, expected {rule}"
    assert error.file == name and name in str(error) and rule in str(error)
    assert error.__cause__ is None and error.__suppress_context__, "no chained exception carrying a value"
    folder = quarantine_dir(root, spec, name)
    assert (folder / name).read_bytes() == data, "the file is quarantined whole, byte for byte"
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["rule"] == rule and reason["file"] == name
    assert not curated_path(root, spec, AS_OF).exists(), "nothing of a rejected file is curated"
    report = read_report(root, spec, name)
    assert report is not None and report.status == "rejected" and report.rule == rule
    assert report.curated is None
    texts = [str(error), *caplog.messages, *_store_texts(root, spec, name)]
    assert _leaks(texts, _personal_values(borough, name)) == 0, f"{case}: a personal value leaked"
    # Found once, not again: the rejected content is dealt with until the department re-sends the file.
    assert pending_extracts(root, spec) == []
    with pytest.raises(ExtractRejected) as again:
        ingest_extract(root, spec, name)
    assert again.value.rule == rule


def test_a_utf8_sig_file_without_its_mark_is_still_read(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["youth_offending"]
    landed = root / "landing" / spec.path_for(AS_OF)
    landed.write_bytes(landed.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    report = ingest_extract(root, spec, _file(spec))
    assert report.accepted == report.received == borough.extracts["youth_offending"].num_rows


def test_a_file_name_without_a_date_is_rejected(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["asb"]
    landed = root / "landing" / spec.path_for(AS_OF)
    odd = landed.with_name("asb_latest.csv")
    odd.write_bytes(landed.read_bytes())
    assert "asb_latest.csv" in pending_extracts(root, spec)
    with pytest.raises(ExtractRejected) as info:
        ingest_extract(root, spec, "asb_latest.csv")
    assert info.value.rule == "file_name"


# --- bad rows: rejected and reported, the rest accepted ----------------------------------------------------

#: (row index in the extract, header, bad value, expected rule); spreadsheet row = index + 2.
BAD_CELLS = [
    (0, "DOB", "31/02/2014", "date_format"),
    (1, "Gender", "X", "code"),
    (2, "UPN", "BAD0001", "pattern"),
    (3, "LegalForename", None, "required"),
    (4, "Postcode", "NOT A PC", "postcode"),
    (5, "UPRN", "12AB", "uprn"),
    (6, "AttendancePct", "ninety", "decimal"),
    (7, "DOB", "01/01/2099", "date_of_birth_range"),
    (8, "Term", "Winter", "code"),
    (9, "DOB", "1/3/2014", "date_format"),
    (10, "AttendancePct", "95.25", "decimal"),
]


def _with_cells(table: pa.Table, cells: Iterable[tuple[int, str, str | None]]) -> pa.Table:
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for row, column, value in cells:
        columns[column][row] = value
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def test_bad_rows_are_rejected_and_reported_without_values(
    borough: Borough, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["education_attendance"]
    table = _with_cells(borough.extracts["education_attendance"], [(r, c, v) for r, c, v, _ in BAD_CELLS])
    # a blank line in the middle of the file is a rejected row too, and keeps every later row's number
    data = encode_extract(table, spec)
    lines = data.split(b"\n")
    lines.insert(20, b"")
    (root / "landing" / spec.path_for(AS_OF)).write_bytes(b"\n".join(lines))
    name = _file(spec)

    with caplog.at_level(logging.DEBUG):
        report = ingest_extract(root, spec, name)

    received = table.num_rows + 1
    assert report.status == "ingested"
    assert report.received == received
    assert report.rejected == len(BAD_CELLS) + 1
    assert report.accepted + report.rejected == report.received
    # lines[20] is spreadsheet row 21: the header is row 1
    expected = {(r + 2, c, rule) for r, c, _, rule in BAD_CELLS} | {(21, "", "blank_row")}
    folder = quarantine_dir(root, spec, name)
    with (folder / "report.csv").open("r") as fh:
        lines_out = list(csv.DictReader(fh))
    assert set(lines_out[0]) == {"file", "row_number", "column", "rule"}
    assert {row["file"] for row in lines_out} == {name}
    assert {(int(r["row_number"]), r["column"], r["rule"]) for r in lines_out} == expected
    assert set(report.rules_broken) <= set(ROW_RULES)
    assert sum(report.rules_broken.values()) == len(expected)
    # Rows after the blank line keep their spreadsheet numbers.
    curated = _curated(root, spec)
    assert curated.num_rows == report.accepted
    kept = set(curated.column("row_number").to_pylist())
    assert not kept & {r for r, _, _ in expected}
    assert kept | {r for r, _, _ in expected} == set(range(2, received + 2))
    with (folder / "rejected_rows.csv").open("r") as fh:
        rejected = list(csv.DictReader(fh))
    assert sorted(int(r["row_number"]) for r in rejected) == sorted(r for r, _, _ in expected)
    texts = [*caplog.messages, *_store_texts(root, spec, name)]
    assert _leaks(texts, _personal_values(borough, name)) == 0


@pytest.mark.parametrize(
    ("source", "column", "value", "accepted"),
    [
        ("housing", "DOB", "01-MAR-2014", True),  # month names in any case
        ("housing", "DOB", "30-Feb-2014", False),
        ("neet", "dob", "20070229", False),  # not a leap year
        ("neet", "dob", "20080229", True),
        ("neet", "dob", "20080230", False),
        ("neet", "postcode", "w105ab", True),  # compact, lower case: upper-cased and spaced
        ("asb", "subject_postcode", "W10  5AB", True),
        ("asb", "subject_postcode", "W10 5AC", False),  # C is never a unit letter
        ("housing", "UPRN", "0", False),
        ("housing", "UPRN", "1234567890123", False),  # 13 digits
        ("housing", "WEEKS_IN_ARREARS", "3.5", False),
        ("housing", "PAYMENT_ARRANGEMENT", "y", False),  # codes are exact
        ("domestic_abuse", "incident_datetime", "2025-01-05 24:00", False),
        ("early_help", "NeedClosed", "", True),  # nullable
        ("early_help", "NeedIdentified", "", False),  # not nullable
    ],
)
def test_single_value_rules(source: str, column: str, value: str, accepted: bool, borough: Borough) -> None:
    spec = SOURCES.sources[source]
    table = _with_cells(borough.extracts[source], [(0, column, value or None)])
    extract = read_extract_file(encode_extract(table, spec), spec, "x.csv")
    verdict = validate_rows(extract, spec, AS_OF)
    assert bool(verdict.accepted[0]) is accepted
    assert verdict.n_accepted == extract.received - (0 if accepted else 1)


# --- nothing is lost: a property over random corruption ----------------------------------------------------

_JUNK = st.one_of(
    st.sampled_from(
        ["", " ", "??", "31/02/2020", "2020-02-30", "X", "0", "99999999999999", "W10 5AC", "-1.5"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(["neet", "early_help", "housing", "childrens_social_care"]),
    cells=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 100), _JUNK), max_size=25),
)
def test_accepted_plus_rejected_is_received_under_random_corruption(
    source: str, cells: list[tuple[int, int, str]], borough: Borough
) -> None:
    spec = SOURCES.sources[source]
    table = borough.extracts[source]
    names = table.column_names
    delimiter_free = [
        (r % table.num_rows, names[c % len(names)], v or None)
        for r, c, v in cells
        # an unquoted source cannot carry its delimiter or a line break in a value: that is a ragged file
        if spec.quoting == "all" or not ({spec.delimiter, "\n", "\r", '"'} & set(v))
    ]
    encodable = [
        (r, c, v) for r, c, v in delimiter_free if v is None or spec.encoding != "cp1252" or _cp1252(v)
    ]
    data = encode_extract(_with_cells(table, encodable), spec)
    extract = read_extract_file(data, spec, "x.csv")
    verdict = validate_rows(extract, spec, AS_OF)

    assert extract.received == table.num_rows
    assert verdict.n_accepted + verdict.n_rejected == extract.received
    touched = {r for r, _, _ in encodable}
    rejected = set(np.flatnonzero(~verdict.accepted).tolist())
    assert rejected <= touched, "an untouched row was rejected"
    reported = set((pc.subtract(verdict.failures.column("row_number"), 2)).to_pylist())
    assert reported == rejected, "every rejected row is reported, and only those"
    assert set(verdict.failures.column("rule").to_pylist()) <= set(ROW_RULES)


def _cp1252(value: str) -> bool:
    try:
        value.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


# --- idempotency ------------------------------------------------------------------------------------------


def test_reingesting_the_same_file_does_nothing(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["childrens_centres"]
    name = _file(spec)
    assert pending_extracts(root, spec) == [name]
    first = ingest_extract(root, spec, name)
    assert not first.skipped
    curated = curated_path(root, spec, AS_OF)
    stamp = (curated.stat().st_mtime_ns, curated.read_bytes(), report_path(root, spec, name).read_bytes())

    assert pending_extracts(root, spec) == []
    assert ingest_source(root, spec) == []
    again = ingest_extract(root, spec, name)

    assert again.skipped and again.accepted == first.accepted
    assert (
        curated.stat().st_mtime_ns,
        curated.read_bytes(),
        report_path(root, spec, name).read_bytes(),
    ) == stamp


def test_finding_work_reads_no_file_whose_stamp_is_unchanged(
    borough: Borough, any_store: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily run stats every landed extract but reads only new or changed ones (file:// and S3)."""
    import supporting_families.ingest.pipeline as ingest

    root = any_store
    write_borough(borough, root / "landing", truth_root=root / "demo")
    spec = SOURCES.sources["asb"]
    name = _file(spec)
    landed = root / "landing" / spec.path_for(AS_OF)
    report = ingest_extract(root, spec, name)
    assert report.landed_stamp is not None and report.landed_stamp.startswith(f"{report.size_bytes}:")

    hashed: list[str] = []
    real_hash = ingest.sha256_of
    monkeypatch.setattr(ingest, "sha256_of", lambda path: hashed.append(path.name) or real_hash(path))
    assert pending_extracts(root, spec) == [] and hashed == [], "an unchanged stamp is not read again"

    # The same content landed again. On S3 the ETag is the same, so it is not read; on a file system it
    # has a new modification time: hashed once, found done, and the stamp refreshed.
    data = landed.read_bytes()
    landed.unlink()
    landed.write_bytes(data)
    read_once = [] if ":etag:" in report.landed_stamp else [name]
    assert pending_extracts(root, spec) == [] and hashed == read_once
    assert pending_extracts(root, spec) == [] and hashed == read_once, "the new stamp is trusted next time"
    refreshed = read_report(root, spec, name)
    assert refreshed is not None and refreshed.landed_stamp == ingest.landed_stamp(landed)

    # Other content of the very same size still shows: the stamp changed, so the content is hashed.
    landed.write_bytes(data.replace(b"\n", b"\r", 1) if b"\r" not in data else data[::-1])
    assert len(landed.read_bytes()) == len(data)
    assert pending_extracts(root, spec) == [name]


def test_a_report_without_a_stamp_is_checked_by_content(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["neet"]
    name = _file(spec)
    ingest_extract(root, spec, name)
    path = report_path(root, spec, name)
    doc = json.loads(path.read_bytes())
    del doc["landed_stamp"]  # a report written before stamps were recorded
    path.write_bytes(json.dumps(doc).encode())
    assert pending_extracts(root, spec) == []
    assert read_report(root, spec, name).landed_stamp is not None  # type: ignore[union-attr]


def test_a_resent_file_with_other_content_is_ingested_again(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["early_help"]
    name = _file(spec)
    landed = root / "landing" / spec.path_for(AS_OF)
    table = borough.extracts["early_help"]
    landed.write_bytes(encode_extract(_with_cells(table, [(0, "NeedCode", "ZZZ")]), spec))
    first = ingest_extract(root, spec, name)
    assert first.rejected == 1 and (quarantine_dir(root, spec, name) / "report.csv").exists()

    landed.write_bytes(encode_extract(table, spec))  # the department re-sends a corrected file

    assert pending_extracts(root, spec) == [name]
    second = ingest_extract(root, spec, name)
    assert not second.skipped and second.rejected == 0 and second.accepted == table.num_rows
    assert second.file_sha256 != first.file_sha256
    assert not (quarantine_dir(root, spec, name) / "report.csv").exists(), "the old row report is cleared"
    assert _curated(root, spec).num_rows == table.num_rows


def test_exceptions_pickle_with_their_fields() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(ExtractRejected("a.csv", "delimiter", "detail")))  # noqa: S301
    assert (error.file, error.rule, error.detail) == ("a.csv", "delimiter", "detail")
    assert str(error) == "a.csv: rejected by rule 'delimiter': detail"


def test_ingest_reports_hold_counts_and_no_values(ingested: UPath, borough: Borough) -> None:
    values = _personal_values(borough, "")
    texts = []
    for spec in SOURCES.sources.values():
        texts.extend(_store_texts(ingested, spec, _file(spec)))
        report = json.loads(report_path(ingested, spec, _file(spec)).read_text())
        assert {"received", "accepted", "rejected", "file_sha256", "rules_broken"} <= set(report)
    assert _leaks(texts, values) == 0


def test_no_value_in_report_csv_even_for_a_rejected_name(borough: Borough, tmp_path: Path) -> None:
    # A name in a column that must match a pattern: the report names the rule and column, not the name.
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["asb"]
    table = borough.extracts["asb"]
    name_value = table.column("subject_forename")[0].as_py()
    landed = root / "landing" / spec.path_for(AS_OF)
    landed.write_bytes(encode_extract(_with_cells(table, [(1, "subject_ref", name_value)]), spec))
    ingest_extract(root, spec, _file(spec))
    report = (quarantine_dir(root, spec, _file(spec)) / "report.csv").read_text()
    assert (name_value in report) is False
    assert list(csv.reader(io.StringIO(report))) == [
        ["file", "row_number", "column", "rule"],
        [_file(spec), "3", "subject_ref", "pattern"],
    ]


def test_rejected_rows_csv_bytes_are_utf8(borough: Borough, tmp_path: Path) -> None:
    root = _store(tmp_path, borough)
    spec = SOURCES.sources["housing"]
    landed = root / "landing" / spec.path_for(AS_OF)
    table = _with_accent(borough, "housing", "FORENAME")
    landed.write_bytes(encode_extract(_with_cells(table, [(0, "TITLE", "DR")]), spec))
    report = ingest_extract(root, spec, _file(spec))
    assert report.rejected == 1
    data = (quarantine_dir(root, spec, _file(spec)) / "rejected_rows.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert len(rows) == 1 and rows[0]["row_number"] == "2"
    assert (rows[0]["FORENAME"] == "Zoë") is True


def test_the_leak_check_can_see_a_leak(borough: Borough) -> None:
    # Guards the no-leak assertions above against passing vacuously.
    values = _personal_values(borough, "")
    neet = borough.extracts["neet"]
    samples = [
        neet.column("forename")[0].as_py(),
        neet.column("address_1")[0].as_py(),
        neet.column("dob")[0].as_py(),
        borough.extracts["asb"].column("subject_postcode")[0].as_py(),
        borough.persons.column("uprn")[0].as_py(),
    ]
    found = [_leaks([f"row 3 of the file: {value}; rule pattern"], values) >= 1 for value in samples]
    assert found == [True] * len(samples)
