"""File-level CSV rules shared by ingest (council extracts) and receive (partner returns).

A file that breaks one of these cannot be read reliably (a shifted delimiter moves a date of birth into a
postcode column), so it is rejected whole. A rejection names the file, the rule and at most row numbers:
never a byte, a cell, an undeclared header or a parser message, since any of those can be personal data
(pyarrow quotes the row it choked on; a headerless file's first line is a person).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Collection, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")


class FileRejected(Exception):
    """A whole file was rejected: ``str()`` names the file and the rule, never a value."""

    def __init__(self, file: str, rule: str, detail: str) -> None:
        self.file = file
        self.rule = rule
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.file}: rejected by rule {self.rule!r}: {self.detail}"

    def __reduce__(self) -> tuple[type[FileRejected], tuple[Any, ...]]:
        # Keep the fields across pickling (multiprocessing, Airflow's exception transport).
        return (type(self), (self.file, self.rule, self.detail))


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, file: str, reject: type[FileRejected], *, encoding: str, declared: str) -> str:
    """The file's text in ``encoding`` ("utf-8", "utf-8-sig" or "cp1252"), or ``reject`` naming the rule.

    ``declared`` ends the messages, saying where the encoding is declared ("sources.yaml declares cp1252").
    """
    if not data.strip():
        raise reject(file, "empty_file", "the file is empty")
    if data.startswith(_UTF16_BOMS):
        raise reject(file, "unexpected_bom", f"a UTF-16 byte-order mark; {declared}")
    if data.startswith(UTF8_BOM):
        if encoding != "utf-8-sig":
            raise reject(file, "unexpected_bom", f"a UTF-8 byte-order mark; {declared}")
        data = data[len(UTF8_BOM) :]
    # A utf-8-sig file without its mark is still unambiguous UTF-8 text, so it is read, not rejected.
    if b"\x00" in data:
        line = _line_of(data, data.index(b"\x00"))
        raise reject(file, "encoding", f"a NUL byte on line {line}: not a {encoding} text file")
    codec = "utf-8" if encoding in ("utf-8", "utf-8-sig") else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        # The error names the byte; only the line number leaves this function.
        line = _line_of(data, exc.start)
        raise reject(file, "encoding", f"bytes on line {line} are not valid {encoding}") from None
    if codec == "cp1252" and not data.isascii():
        # Every byte sequence decodes as cp1252, so a UTF-8 file would be read as mojibake ("JosÃ©") and
        # linked to no one. Multi-byte sequences that are valid UTF-8 do not occur in real cp1252 names.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise reject(file, "encoding", f"the file is UTF-8 text; {declared}")
    return text


def split_first_line(text: str) -> tuple[str, str]:
    """The first line without its line end, and everything after that line end ("" if there is none)."""
    end = text.find("\n")
    if end < 0:
        return text.rstrip("\r"), ""
    return text[:end].rstrip("\r"), text[end + 1 :]


def split_header(line: str, delimiter: str = ",", *, quoted: bool = True) -> list[str]:
    """The header line's fields, with RFC 4180 quotes when ``quoted``."""
    reader = csv.reader(
        [line],
        delimiter=delimiter,
        quotechar='"',
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
    )
    return next(reader, [])


def check_duplicate_headers(
    header: Sequence[str], known: Collection[str], file: str, reject: type[FileRejected]
) -> None:
    """``reject`` by ``duplicate_headers`` if a header repeats; only names in ``known`` are quoted."""
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        # An undeclared name could be a value (a headerless file's first line is a person).
        named = [h for h in dupes if h in known]
        others = len(dupes) - len(named)
        raise reject(
            file,
            "duplicate_headers",
            f"repeated headers {named}" + (f" and {others} other repeated header(s)" if others else ""),
        )


def _read_csv(
    data: bytes,
    names: Sequence[str],
    *,
    skip_rows: int,
    delimiter: str,
    quoted: bool,
    threads: bool,
    ragged: list[int | None],
) -> pa.Table:
    def on_invalid(row: pacsv.InvalidRow) -> str:
        # row.text holds the values: only the number is kept. It counts records (not lines, so quoted line
        # breaks do not shift it) from the first line of ``data`` as 1; a threaded reader leaves it None.
        ragged.append(row.number)
        return "skip"

    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            column_names=list(names), skip_rows=skip_rows, use_threads=threads, block_size=16 << 20
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if quoted else False,
            double_quote=True,
            newlines_in_values=quoted,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def read_rows(
    data: bytes,
    names: Sequence[str],
    file: str,
    reject: type[FileRejected],
    *,
    header_in_data: bool,
    delimiter: str = ",",
    quoted: bool = True,
) -> tuple[pa.Table, list[int]]:
    """Every field of ``data`` as a string under ``names``, and the ragged rows' numbers.

    ``header_in_data``: ``data`` starts with the header line, which is skipped; otherwise it starts with the
    first data row. Ragged rows are left out of the table; their numbers, ascending, are spreadsheet rows
    (the header is row 1) either way. An unparseable file is rejected with ``unparseable``.
    """
    if quoted and data.count(b'"') % 2:
        # Quotes come in pairs (an embedded quote is doubled); an odd count is usually a truncated file,
        # whose last value the parser would otherwise take, cut short, without complaint.
        raise reject(file, "unparseable", "an unbalanced double quote: is the file truncated?")
    ragged: list[int | None] = []
    read = functools.partial(
        _read_csv,
        data,
        names,
        skip_rows=int(header_in_data),
        delimiter=delimiter,
        quoted=quoted,
        ragged=ragged,
    )
    try:
        table = read(threads=True)
        if None in ragged:
            # The threaded reader does not know row numbers; read again, in one thread, to name them.
            ragged.clear()
            read(threads=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # pyarrow's message quotes the row it choked on: keep none of it.
        raise reject(
            file, "unparseable", "the CSV parser could not read the file (an unbalanced quote?)"
        ) from None
    # Without the header in ``data``, record 1 is spreadsheet row 2.
    offset = 0 if header_in_data else 1
    return table, sorted(n + offset for n in ragged if n is not None)


def ragged_detail(rows: Sequence[int], width: int) -> str:
    """The ``ragged_rows`` detail: how many rows, never their fields."""
    return f"{len(rows)} row(s) with a field count other than the header's {width}"


def blank_to_null(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty strings as nulls, which is what the row rules see as "no value"."""
    out: pa.ChunkedArray = pc.if_else(
        pc.equal(pc.utf8_length(values), 0), pa.scalar(None, pa.string()), values
    )
    return out
