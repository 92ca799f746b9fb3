"""Reading one extract file strictly by its :class:`~supporting_families.sources.SourceSpec`.

Everything here is about the file as a whole: bytes, encoding, byte-order mark, header, delimiter and row
shape. A file that breaks one of these rules cannot be read reliably (a shifted delimiter moves a date of
birth into a postcode column), so it is rejected whole with :class:`ExtractRejected`, which names the file and
the rule and never a value: no header that is not in ``sources.yaml`` (a headerless file's first line is a
person), no byte, no parser message (pyarrow quotes the offending row).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from supporting_families.sources import SourceSpec

UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
#: Delimiters departments' systems actually use; tried only to explain a header that does not split.
_OTHER_DELIMITERS: Final = (",", ";", "|", "\t")

#: File-level rules: each rejects the whole file. The keys are what reports and exceptions name.
FILE_RULES: Final[dict[str, str]] = {
    "file_name": "the file name does not carry an extract date in the source's extract_date_format",
    "empty_file": "the file has no content",
    "encoding": "the bytes are not valid text in the encoding sources.yaml declares",
    "unexpected_bom": "the file starts with a byte-order mark sources.yaml does not declare",
    "delimiter": "the header does not split on the delimiter sources.yaml declares",
    "duplicate_headers": "a column header appears more than once",
    "missing_headers": "a column sources.yaml names is not in the header",
    "unknown_headers": "the header has columns sources.yaml does not name",
    "ragged_rows": "a row has more or fewer fields than the header",
    "unparseable": "the CSV cannot be parsed (for example an unbalanced quote)",
    "header_only": "the file has a header and no rows",
    "no_valid_rows": "every row broke a row rule: the file, not its rows, is wrong",
}


class ExtractRejected(Exception):
    """A whole extract file was rejected: ``str()`` names the file and the rule, never a value."""

    def __init__(self, file: str, rule: str, detail: str) -> None:
        self.file = file
        self.rule = rule
        self.detail = detail
        super().__init__(f"{file}: rejected by rule {rule!r}: {detail}")

    def __reduce__(self) -> tuple[type[ExtractRejected], tuple[str, str, str]]:
        # Keep the three fields across pickling (multiprocessing, Airflow's exception transport).
        return (ExtractRejected, (self.file, self.rule, self.detail))


@dataclass(frozen=True)
class RawExtract:
    """An extract's rows as text: columns in ``sources.yaml`` order, under their headers.

    ``raw`` holds the values exactly as parsed (kept for the quarantine of rejected rows); ``values`` the same
    values with surrounding whitespace removed and empty fields as nulls, which is what the rules see.
    Row ``i`` of either table is spreadsheet row ``i + 2`` (the header is row 1).
    """

    raw: pa.Table
    values: pa.Table

    @property
    def received(self) -> int:
        return int(self.raw.num_rows)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, spec: SourceSpec, file: str) -> str:
    """The file's text, by the declared encoding, with the rules about byte-order marks and bad bytes."""
    if not data.strip():
        raise ExtractRejected(file, "empty_file", "the file is empty")
    if data.startswith(_UTF16_BOMS):
        raise ExtractRejected(
            file, "unexpected_bom", f"a UTF-16 byte-order mark; sources.yaml declares {spec.encoding}"
        )
    if data.startswith(UTF8_BOM):
        if spec.encoding != "utf-8-sig":
            raise ExtractRejected(
                file, "unexpected_bom", f"a UTF-8 byte-order mark; sources.yaml declares {spec.encoding}"
            )
        data = data[len(UTF8_BOM) :]
    # A utf-8-sig file without its mark is still unambiguous UTF-8 text, so it is read, not rejected.
    if b"\x00" in data:
        line = _line_of(data, data.index(b"\x00"))
        raise ExtractRejected(file, "encoding", f"a NUL byte on line {line}: not a {spec.encoding} text file")
    codec = "utf-8" if spec.encoding in ("utf-8", "utf-8-sig") else spec.encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        # The error names the byte; only the line number leaves this function.
        line = _line_of(data, exc.start)
        raise ExtractRejected(
            file, "encoding", f"bytes on line {line} are not valid {spec.encoding}"
        ) from None
    if codec == "cp1252" and not data.isascii():
        # Every byte sequence decodes as cp1252, so a UTF-8 file would be read as mojibake ("JosÃ©") and
        # linked to no one. Multi-byte sequences that are valid UTF-8 do not occur in real cp1252 names.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise ExtractRejected(file, "encoding", "the file is UTF-8 text; sources.yaml declares cp1252")
    return text


def _split_header(line: str, delimiter: str, quoting: str) -> list[str]:
    reader = csv.reader(
        [line],
        delimiter=delimiter,
        quotechar='"',
        quoting=csv.QUOTE_MINIMAL if quoting == "all" else csv.QUOTE_NONE,
    )
    return next(reader, [])


def check_header(header_line: str, spec: SourceSpec, file: str) -> list[str]:
    """The header's column names, checked against ``sources.yaml``.

    Columns are read by name, so a different order is accepted; anything else is rejected. Only names that
    ``sources.yaml`` declares are ever quoted in a message.
    """
    expected = [c.name for c in spec.columns]
    header = _split_header(header_line, spec.delimiter, spec.quoting)
    known = set(expected)
    if set(header) != known:
        for other in _OTHER_DELIMITERS:
            if other == spec.delimiter:
                continue
            split = _split_header(header_line, other, spec.quoting)
            if set(split) == known or (len(header) == 1 and len(split) > 1):
                raise ExtractRejected(
                    file,
                    "delimiter",
                    f"the header splits on {other!r} into {len(split)} fields; "
                    f"sources.yaml declares {spec.delimiter!r}",
                )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        named = [h for h in dupes if h in known]
        others = len(dupes) - len(named)
        raise ExtractRejected(
            file,
            "duplicate_headers",
            f"repeated headers {named}" + (f" and {others} other repeated header(s)" if others else ""),
        )
    missing = [name for name in expected if name not in header]
    if missing:
        raise ExtractRejected(file, "missing_headers", f"headers not found: {missing}")
    unknown = [h for h in header if h not in known]
    if unknown:
        raise ExtractRejected(
            file, "unknown_headers", f"{len(unknown)} header(s) that sources.yaml does not name"
        )
    return header


def parse_rows(text: str, spec: SourceSpec, file: str) -> RawExtract:
    """Parse the decoded text into :class:`RawExtract`, rejecting the file on any file-level rule."""
    end = text.find("\n")
    header_line = (text if end < 0 else text[:end]).rstrip("\r")
    header = check_header(header_line, spec, file)
    body = "" if end < 0 else text[end + 1 :]
    # Trailing line ends are not rows (Windows exports often end with an extra CRLF); blank lines inside the
    # file are kept as rows, so every later row keeps the number a spreadsheet would show.
    body = body.rstrip("\r\n")
    if not body:
        raise ExtractRejected(file, "header_only", "the file has a header and no rows")
    quoted = spec.quoting == "all"
    if quoted and body.count('"') % 2:
        # Quotes come in pairs (an embedded quote is doubled); an odd count is usually a truncated file,
        # whose last value the parser would otherwise take, cut short, without complaint.
        raise ExtractRejected(file, "unparseable", "an unbalanced double quote: is the file truncated?")
    ragged: list[int | None] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # row.text holds the values: only the line number is kept.
        ragged.append(row.number)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO((body + "\n").encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=spec.delimiter,
                quote_char='"' if quoted else False,
                newlines_in_values=quoted,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # pyarrow's message quotes the row it choked on: keep none of it.
        raise ExtractRejected(
            file, "unparseable", "the CSV parser could not read the file (an unbalanced quote?)"
        ) from None
    if ragged:
        first = next((n for n in ragged if n is not None), None)
        where = f", the first on line {first + 1}" if first is not None else ""  # +1: the header line
        raise ExtractRejected(
            file,
            "ragged_rows",
            f"{len(ragged)} row(s) with a field count other than the header's {len(header)}{where}",
        )
    raw = table.select([c.name for c in spec.columns])
    values = pa.table(
        [_blank_to_null(pc.utf8_trim_whitespace(raw.column(i))) for i in range(raw.num_columns)],
        names=raw.column_names,
    )
    return RawExtract(raw=raw, values=values)


def _blank_to_null(values: pa.ChunkedArray) -> pa.ChunkedArray:
    empty = pc.equal(pc.utf8_length(values), 0)
    out: pa.ChunkedArray = pc.if_else(empty, pa.scalar(None, pa.string()), values)
    return out


def read_extract_file(data: bytes, spec: SourceSpec, file: str) -> RawExtract:
    """Decode and parse one extract's bytes by ``spec``; :class:`ExtractRejected` if it cannot be read."""
    return parse_rows(decode(data, spec, file), spec, file)
