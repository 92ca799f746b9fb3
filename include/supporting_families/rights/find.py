"""Finding a requester in the register without their details entering Airflow.

A request arrives with a name, a date of birth and a postcode. The officer runs
``python -m supporting_families.rights find`` on the controller side and types them on stdin (never argv,
which other users can read in the process list, and never Airflow, whose forms are kept in its metadata
database). It prints the candidate person ids with their match evidence, per field a level as the linkage
compares them (``identify/linkage.py``): names exact, nickname-equivalent (``identify/names.py``) or by
Jaro-Winkler similarity; the date of birth exact, with day and month transposed, one part different; the
postcode exact, same sector, different. The officer then triggers the rights DAGs with the person id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.identify.names import nickname_equivalent, normalise_name, soundex
from supporting_families.store.io import is_local, local_path
from supporting_families.store.layout import register_file

#: Evidence weights: how far a level moves the officer's confidence. Fixed and shown, not learnt: the
#: officer confirms a candidate against the request's documents, the score only orders the list.
_WEIGHTS = {
    "given": {"exact": 3, "nickname": 2, "similar": 1, "other": -3, "missing": 0},
    "family": {"exact": 3, "similar": 1, "other": -2, "missing": 0},
    "date_of_birth": {"exact": 4, "transposed": 2, "one_part": 1, "other": -4, "missing": 0},
    "postcode": {"exact": 2, "sector": 1, "other": 0, "missing": 0},
}


@dataclass(frozen=True)
class Probe:
    given_name: str
    family_name: str
    date_of_birth: date | None
    postcode: str | None


def _postcode(value: str | None) -> str:
    return "".join((value or "").split()).upper()


def _name_level(a: str, b: str, jw: float, *, given: bool) -> str:
    if not a or not b:
        return "missing"
    if a == b:
        return "exact"
    if given and nickname_equivalent(a, b):
        return "nickname"
    if jw >= 0.88:
        return "similar"
    return "other"


def _dob_level(a: date | None, b: date | None) -> str:
    if a is None or b is None:
        return "missing"
    if a == b:
        return "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "transposed"
    same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    return "one_part" if same == 2 else "other"


def _postcode_level(a: str, b: str) -> str:
    if not a or not b:
        return "missing"
    if a == b:
        return "exact"
    return "sector" if len(a) > 3 and len(b) > 3 and a[:-2] == b[:-2] else "other"


def find_candidates(store: UPath, probe: Probe, limit: int = 10) -> list[dict[str, Any]]:
    """Candidates ordered by score: ``person_id``, ``family_id``, ``score`` and the evidence per field."""
    path = register_file(store, "persons")
    if not path.exists():
        return []
    given, family = normalise_name(probe.given_name), normalise_name(probe.family_name)
    postcode = _postcode(probe.postcode)
    con = duckdb.connect()
    try:
        if is_local(path):
            con.register("persons", con.read_parquet(str(local_path(path))))
        else:
            with path.open("rb") as fh:
                con.register("persons", pq.read_table(fh))
        # Blocking, as the linkage does: the same date of birth (or transposed), the same postcode, or the
        # same family-name sound and birth year. The values are bound parameters, never SQL text.
        rows = con.execute(
            """
            SELECT person_id, family_id, given_name, family_name, date_of_birth, postcode
            FROM persons
            WHERE date_of_birth = $dob
               OR (month(date_of_birth) = day($dob) AND day(date_of_birth) = month($dob)
                   AND year(date_of_birth) = year($dob))
               OR replace(upper(postcode), ' ', '') = $postcode
               OR (year(date_of_birth) = year($dob) AND
                   jaro_winkler_similarity(lower(family_name), $family) >= 0.8)
            """,
            {"dob": probe.date_of_birth, "postcode": postcode or None, "family": family},
        ).fetchall()
        # One connection for the blocking query and every candidate's similarity.
        out = []
        for person_id, family_id, gn, fn, dob, pc_ in rows:
            gn_n, fn_n = normalise_name(gn or ""), normalise_name(fn or "")
            evidence = {
                "given": _name_level(given, gn_n, _jw(con, given, gn_n), given=True),
                "family": _name_level(family, fn_n, _jw(con, family, fn_n), given=False),
                "date_of_birth": _dob_level(probe.date_of_birth, dob),
                "postcode": _postcode_level(postcode, _postcode(pc_)),
            }
            if evidence["family"] == "other" and soundex(family) == soundex(fn_n):
                evidence["family"] = "similar"
            score = sum(_WEIGHTS[k][v] for k, v in evidence.items())
            if score >= 4:
                out.append(
                    {"person_id": person_id, "family_id": family_id, "score": score, "evidence": evidence}
                )
    finally:
        con.close()
    out.sort(key=lambda c: (-int(c["score"]), str(c["person_id"])))
    return out[:limit]


def _jw(con: duckdb.DuckDBPyConnection, a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    value = con.execute("SELECT jaro_winkler_similarity($a, $b)", {"a": a, "b": b}).fetchone()
    return float(value[0]) if value else 0.0
