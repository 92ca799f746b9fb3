"""The file-level CSV rules ingest and receive share: they name the file, rule and rows, never a value."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from supporting_families.ingest import ExtractRejected
from supporting_families.receive.validate import PROBLEMS_SCHEMA, ReturnRejected
from supporting_families.validation import (
    FileRejected,
    blank_to_null,
    check_duplicate_headers,
    decode,
    ragged_detail,
    read_rows,
    split_first_line,
    split_header,
)
from supporting_families.validation import csv_rules as csv_checks

SECRET = "Zebedee"  # stands for a personal value: it must never reach a message


def _decode(data: bytes, encoding: str = "utf-8") -> str:
    return decode(data, "f.csv", FileRejected, encoding=encoding, declared=f"declared {encoding}")


@pytest.mark.parametrize(
    ("data", "encoding", "rule", "detail"),
    [
        (b" \r\n", "utf-8", "empty_file", "the file is empty"),
        (b"\xff\xfea\x00", "utf-8-sig", "unexpected_bom", "a UTF-16 byte-order mark; declared utf-8-sig"),
        (b"\xef\xbb\xbfa\n", "utf-8", "unexpected_bom", "a UTF-8 byte-order mark; declared utf-8"),
        (b"\xef\xbb\xbfa\n", "cp1252", "unexpected_bom", "a UTF-8 byte-order mark; declared cp1252"),
        (b"a\nb\x00\n", "utf-8", "encoding", "a NUL byte on line 2: not a utf-8 text file"),
        (b"a\n\nJos\xe9\n", "utf-8", "encoding", "bytes on line 3 are not valid utf-8"),
        ("a\nJosé\n".encode(), "cp1252", "encoding", "the file is UTF-8 text; declared cp1252"),
    ],
    ids=["blank", "utf16-bom", "utf8-bom", "bom-in-cp1252", "nul", "bad-utf8", "utf8-as-cp1252"],
)
def test_decode_rejects_by_rule_naming_the_line(data: bytes, encoding: str, rule: str, detail: str) -> None:
    with pytest.raises(FileRejected) as caught:
        _decode(data, encoding)
    assert (caught.value.file, caught.value.rule, caught.value.detail) == ("f.csv", rule, detail)


def test_decode_reads_a_declared_mark_and_cp1252() -> None:
    assert _decode(b"\xef\xbb\xbfa\n", "utf-8-sig") == "a\n"
    assert _decode(b"a\n", "utf-8-sig") == "a\n"
    assert _decode(b"Jos\xe9\n", "cp1252") == "José\n"


def test_decode_raises_the_callers_class() -> None:
    class Mine(FileRejected):
        pass

    with pytest.raises(Mine):
        decode(b"", "f.csv", Mine, encoding="utf-8", declared="")


def test_the_first_line_and_the_header() -> None:
    assert split_first_line("a,b\r\n1,2\r\n") == ("a,b", "1,2\r\n")
    assert split_first_line("a,b\r") == ("a,b", "")
    assert split_header('"a,b",c') == ["a,b", "c"]
    assert split_header('"a"|b', "|", quoted=False) == ['"a"', "b"]


def test_duplicate_headers_quote_only_declared_names() -> None:
    check_duplicate_headers(["a", "b"], {"a", "b"}, "f.csv", FileRejected)
    with pytest.raises(FileRejected) as caught:
        check_duplicate_headers(["a", "a", SECRET, SECRET], {"a"}, "f.csv", FileRejected)
    assert caught.value.rule == "duplicate_headers"
    assert caught.value.detail == "repeated headers ['a'] and 1 other repeated header(s)"


@pytest.mark.parametrize("header_in_data", [True, False])
def test_ragged_rows_are_numbered_as_a_spreadsheet_shows_them(header_in_data: bool) -> None:
    # Row 3 holds a quoted line break, so rows and lines differ from there on.
    body = f'1,2\n"{SECRET}\nx",3\n4\n5,6,7\n8,9\n'
    data = (("a,b\n" if header_in_data else "") + body).encode()
    table, ragged = read_rows(data, ["a", "b"], "f.csv", FileRejected, header_in_data=header_in_data)
    assert ragged == [4, 5]
    assert table.column("a").to_pylist() == ["1", f"{SECRET}\nx", "8"]
    assert ragged_detail(ragged, 2) == "2 row(s) with a field count other than the header's 2"


def test_unquoted_files_take_quotes_as_text() -> None:
    table, ragged = read_rows(
        b'"a|b\n', ["x", "y"], "f.csv", FileRejected, header_in_data=False, quoted=False, delimiter="|"
    )
    assert ragged == [] and table.column("x").to_pylist() == ['"a']


def test_an_unbalanced_quote_is_rejected_without_the_text() -> None:
    with pytest.raises(FileRejected) as caught:
        read_rows(f'a,b\n1,"{SECRET}\n'.encode(), ["a", "b"], "f.csv", FileRejected, header_in_data=True)
    assert caught.value.rule == "unparseable" and SECRET not in str(caught.value)


def test_a_parser_error_is_rejected_without_the_parsers_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise pa.ArrowInvalid(f"CSV parse error: row 2: {SECRET}")

    monkeypatch.setattr(csv_checks.pacsv, "read_csv", fail)
    with pytest.raises(FileRejected) as caught:
        read_rows(b"a,b\n1,2\n", ["a", "b"], "f.csv", FileRejected, header_in_data=True)
    assert caught.value.rule == "unparseable" and SECRET not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_rejections_pickle_as_their_own_class_with_their_fields() -> None:
    error = pickle.loads(pickle.dumps(ExtractRejected("a.csv", "encoding", "detail")))  # noqa: S301
    assert type(error) is ExtractRejected
    assert (error.file, error.rule, error.detail) == ("a.csv", "encoding", "detail")
    assert str(error) == "a.csv: rejected by rule 'encoding': detail"
    problems = pa.table({"row_number": [3], "column": [""], "rule": ["ragged_row"]}, schema=PROBLEMS_SCHEMA)
    returned = pickle.loads(pickle.dumps(ReturnRejected("r.csv", "ragged_rows", "1 row", problems)))  # noqa: S301
    assert type(returned) is ReturnRejected and returned.row_numbers == [3]
    # A partner-chosen name is shown by its hash only (it may be shaped like personal data).
    assert str(returned).endswith(
        ": rejected by rule 'ragged_rows': 1 row (row rules ['ragged_row']; rows 3; see report.csv)"
    )
    assert str(returned).startswith("name sha256 ") and "r.csv" not in str(returned)


def test_empty_fields_become_nulls() -> None:
    values = pa.chunked_array([["", " ", "x"]])
    assert blank_to_null(values).to_pylist() == [None, " ", "x"]
