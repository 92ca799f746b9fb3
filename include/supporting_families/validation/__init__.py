"""Checks shared by ingest and receive: file-level CSV rules and lazy row validation.

Both report where a file or a row failed (file, row number, column, rule), never what it held: the values
are personal data. ``csv_rules`` rejects a file that cannot be read reliably as a whole
(:class:`FileRejected`); ``rows`` turns pandera's lazy failures into positions and rule names.
"""

from __future__ import annotations

from supporting_families.validation.csv_rules import (
    FileRejected,
    blank_to_null,
    check_duplicate_headers,
    decode,
    ragged_detail,
    read_rows,
    split_first_line,
    split_header,
)
from supporting_families.validation.rows import RowFailures, blank_rows, lazy_failures

__all__ = [
    "FileRejected",
    "RowFailures",
    "blank_rows",
    "blank_to_null",
    "check_duplicate_headers",
    "decode",
    "lazy_failures",
    "ragged_detail",
    "read_rows",
    "split_first_line",
    "split_header",
]
