"""Reading one extract file strictly by its :class:`~supporting_families.config.sources.SourceSpec`.

Everything here is about the file as a whole: bytes, encoding, byte-order mark, header, delimiter and row
shape. A file that breaks one of these rules cannot be read reliably (a shifted delimiter moves a date of
birth into a postcode column), so it is rejected whole with :class:`ExtractRejected`, which names the file and
the rule and never a value: no header that is not in ``sources.yaml`` (a headerless file's first line is a
person), no byte, no parser message (pyarrow quotes the offending row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.sources import SourceSpec
from supporting_families.validation import csv_rules as csv_checks

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


class ExtractRejected(csv_checks.FileRejected):
    """A whole extract file was rejected: ``str()`` names the file and the rule, never a value."""


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


def decode(data: bytes, spec: SourceSpec, file: str) -> str:
    """The file's text, by the declared encoding, with the rules about byte-order marks and bad bytes."""
    return csv_checks.decode(
        data, file, ExtractRejected, encoding=spec.encoding, declared=f"sources.yaml declares {spec.encoding}"
    )


def check_header(header_line: str, spec: SourceSpec, file: str) -> list[str]:
    """The header's column names, checked against ``sources.yaml``.

    Columns are read by name, so a different order is accepted; anything else is rejected. Only names that
    ``sources.yaml`` declares are ever quoted in a message.
    """
    expected = [c.name for c in spec.columns]
    quoted = spec.quoting == "all"
    header = csv_checks.split_header(header_line, spec.delimiter, quoted=quoted)
    known = set(expected)
    if set(header) != known:
        # Unlike a return's fixed format, each source declares its delimiter, and departments' systems
        # differ: a header that splits on another one is worth naming as that rule.
        for other in _OTHER_DELIMITERS:
            if other == spec.delimiter:
                continue
            split = csv_checks.split_header(header_line, other, quoted=quoted)
            if set(split) == known or (len(header) == 1 and len(split) > 1):
                raise ExtractRejected(
                    file,
                    "delimiter",
                    f"the header splits on {other!r} into {len(split)} fields; "
                    f"sources.yaml declares {spec.delimiter!r}",
                )
    csv_checks.check_duplicate_headers(header, known, file, ExtractRejected)
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
    header_line, body = csv_checks.split_first_line(text)
    header = check_header(header_line, spec, file)
    # Trailing line ends are not rows (Windows exports often end with an extra CRLF); blank lines inside the
    # file are kept as rows, so every later row keeps the number a spreadsheet would show.
    body = body.rstrip("\r\n")
    if not body:
        raise ExtractRejected(file, "header_only", "the file has a header and no rows")
    # The body, not the whole text: it was decoded from the declared encoding and its trailing line ends
    # dropped, and its columns are read by name in whatever order the header has them.
    table, ragged = csv_checks.read_rows(
        (body + "\n").encode("utf-8"),
        header,
        file,
        ExtractRejected,
        header_in_data=False,
        delimiter=spec.delimiter,
        quoted=spec.quoting == "all",
    )
    if ragged:
        where = f", the first on line {ragged[0]}"
        raise ExtractRejected(file, "ragged_rows", csv_checks.ragged_detail(ragged, len(header)) + where)
    raw = table.select([c.name for c in spec.columns])
    values = pa.table(
        [csv_checks.blank_to_null(pc.utf8_trim_whitespace(raw.column(i))) for i in range(raw.num_columns)],
        names=raw.column_names,
    )
    return RawExtract(raw=raw, values=values)


def read_extract_file(data: bytes, spec: SourceSpec, file: str) -> RawExtract:
    """Decode and parse one extract's bytes by ``spec``; :class:`ExtractRejected` if it cannot be read."""
    return parse_rows(decode(data, spec, file), spec, file)
