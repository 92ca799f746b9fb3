"""Generate a synthetic borough in memory and write it under a store root.

Layout under the root (``file://`` or ``s3://``)::

    extracts/<source>/<source>_<as_of>.csv   what each department sends (formats from include/sources.yaml)
    truth/persons.parquet                    who is who: true ids, identity, current and previous address
    truth/links.parquet                      (source, record_id) -> person_id, with the dirt applied to it
    truth/person_criteria.parquet            sub-criteria met on as_of, per person and source
    truth/family_criteria.parquet            headline problems and eligibility per family
    truth/manifest.json                      seed, as_of, dirt, counts, criteria: no personal data
    partner_truth/dwp_benefits.parquet       benefits DWP holds, with the fields DWP matches on
    partner_truth/met_police_events.parquet  offences, cautions, ASB interventions the police hold

The synthetic data is handled as if it were real personal data: nothing here logs a row, only counts.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from sf_demo.synthetic.dates import window_start
from sf_demo.synthetic.dirt import DirtConfig
from sf_demo.synthetic.extracts import (
    SOURCE_GENERATORS,
    Context,
    PersonText,
    SourceRows,
    assemble,
)
from sf_demo.synthetic.partners import DwpRows, PoliceRows, dwp, police
from sf_demo.synthetic.population import ROLE_NAMES, Population, build_population
from sf_demo.synthetic.sources import (
    SourcesConfig,
    SourcesConfigError,
    encode_extract,
    load_sources,
)
from sf_demo.synthetic.truth import HEADLINE_PROBLEMS, MIN_PROBLEMS, SUB_CRITERIA, build_truth
from sf_demo.synthetic.vocab import vocabularies
from sf_demo.synthetic.wards import ward_lookup, ward_lookup_csv
from supporting_families.store import write_bytes_atomic

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Borough:
    """A generated borough: the extracts as the departments write them, and the truth about them."""

    seed: int
    as_of: date
    dirt: DirtConfig
    n_persons: int
    sources: SourcesConfig
    #: per source, the table exactly as written: the source's own headers, every value as text (null = empty)
    extracts: Mapping[str, pa.Table]
    persons: pa.Table
    links: pa.Table
    person_criteria: pa.Table
    family_criteria: pa.Table
    dwp_benefits: pa.Table
    police_events: pa.Table

    def truth_tables(self) -> dict[str, pa.Table]:
        return {
            "truth/persons": self.persons,
            "truth/links": self.links,
            "truth/person_criteria": self.person_criteria,
            "truth/family_criteria": self.family_criteria,
            "partner_truth/dwp_benefits": self.dwp_benefits,
            "partner_truth/met_police_events": self.police_events,
        }


def _ids(prefix: str, n: int) -> Any:
    text = pc.utf8_lpad(
        pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()), width=8, padding="0"
    )
    return pc.binary_join_element_wise(pa.array([prefix] * n, pa.string()), text, "")


def _persons_table(pop: Population, ids: dict[str, Any], people: PersonText) -> pa.Table:
    vocab = vocabularies()
    props = pop.properties
    prop = pa.array(pop.person_property())
    prev = pop.hh_prev_property[pop.household]
    moved = prev >= 0
    prev_take = pa.array(np.where(moved, prev, 0))
    no_prev = pa.array(~moved)

    def previous(column: Any) -> Any:
        return pc.if_else(no_prev, pa.nulls(pop.n, pa.string()), column.take(prev_take))

    move = pop.hh_move_date[pop.household]
    return pa.table(
        {
            "person_id": ids["person"],
            "household_id": ids["household"].take(pa.array(pop.household)),
            "family_id": ids["family"].take(pa.array(pop.family)),
            "given_name": vocab.given.take(pop.given),
            "family_name": vocab.surname.take(pop.surname),
            "date_of_birth": people.dob,
            "sex": people.sex,
            "address_line_1": props.address_line_1.take(prop),
            "address_line_2": props.address_line_2.take(prop),
            "town": props.town.take(prop),
            "postcode": props.postcode.take(prop),
            "uprn": props.uprn.take(prop),
            "role": pa.array(list(ROLE_NAMES), pa.string()).take(pa.array(pop.role.astype(np.int64))),
            "previous_address_line_1": previous(props.address_line_1),
            "previous_postcode": previous(props.postcode),
            "previous_uprn": previous(props.uprn),
            "moved_on": pa.array(move, mask=np.isnat(move)),
        }
    )


def _identity(persons: pa.Table, person: np.ndarray[Any, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    take = pa.array(person)
    return {
        "person_id": persons.column("person_id").take(take),
        **{f: persons.column(f).take(take) for f in fields},
    }


def _dwp_table(rows: DwpRows, persons: pa.Table) -> pa.Table:
    # DWP agreement: full address and UPRN are what the council sends; DWP also holds name, DOB and sex.
    columns = _identity(
        persons,
        rows.person,
        (
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "address_line_1",
            "address_line_2",
            "town",
            "postcode",
            "uprn",
        ),
    )
    columns.update(
        {
            "benefit_type": rows.benefit.to_arrow(),
            "out_of_work": pa.array(rows.out_of_work),
            "disability_related": pa.array(rows.disability_related),
            "award_start_date": pa.array(rows.award_start),
        }
    )
    return pa.table(columns)


def _police_table(rows: PoliceRows, persons: pa.Table) -> pa.Table:
    # Police agreement: name, date of birth and postcode only.
    columns = _identity(persons, rows.person, ("given_name", "family_name", "date_of_birth", "postcode"))
    columns.update(
        {
            "event_type": rows.event_type.to_arrow(),
            "event_date": pa.array(rows.event_date),
            "detail": rows.detail.to_arrow(),
        }
    )
    return pa.table(columns)


def generate_borough(
    n_persons: int,
    *,
    seed: int = 0,
    as_of: date,
    dirt: DirtConfig = DirtConfig(),  # noqa: B008 - frozen dataclass, safe as a default
    sources: SourcesConfig | None = None,
) -> Borough:
    """A borough of ``n_persons`` persons, deterministic from ``seed``, with extracts dated ``as_of``.

    The same seed and ``as_of`` give the same persons, families and criteria truth whatever ``dirt`` is; dirt
    only changes how records describe them. ``sources`` defaults to ``include/sources.yaml``.
    """
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    sources = sources if sources is not None else load_sources()
    if set(sources.sources) != set(SOURCE_GENERATORS):
        raise SourcesConfigError.one(
            "sources.yaml",
            "sources",
            f"lists {sorted(sources.sources)} but the generator makes {sorted(SOURCE_GENERATORS)}",
        )
    pop = build_population(n_persons, seed, as_of, dirt)
    ids = {
        "person": _ids("TP", pop.n),
        "household": _ids("TH", pop.n_households),
        "family": _ids("TF", pop.n_families),
    }
    people = PersonText(
        ids["person"], pa.array(np.where(pop.female, "F", "M")).cast(pa.string()), pa.array(pop.dob)
    )
    ctx = Context(pop, seed, as_of)
    rows: dict[str, SourceRows] = {name: make(ctx) for name, make in SOURCE_GENERATORS.items()}
    extracts: dict[str, pa.Table] = {}
    links = []
    for name, source_rows in rows.items():
        extracts[name], source_links = assemble(source_rows, sources.sources[name], pop, people, dirt, seed)
        links.append(source_links)
    dwp_rows = dwp(ctx)
    police_rows = police(ctx, rows["youth_offending"], rows["asb"])
    truth = build_truth(pop, rows, dwp_rows, police_rows, ids, as_of)
    persons = _persons_table(pop, ids, people)
    borough = Borough(
        seed=seed,
        as_of=as_of,
        dirt=dirt,
        n_persons=pop.n,
        sources=sources,
        extracts=extracts,
        persons=persons,
        links=pa.concat_tables(links),
        person_criteria=truth.person_criteria,
        family_criteria=truth.family_criteria,
        dwp_benefits=_dwp_table(dwp_rows, persons),
        police_events=_police_table(police_rows, persons),
    )
    log.info(
        "generated a borough of %d persons, %d households, %d families",
        pop.n,
        pop.n_households,
        pop.n_families,
    )
    return borough


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def manifest(borough: Borough, counts: Mapping[str, int]) -> dict[str, Any]:
    """What was generated and how, without personal data (seed, date, rates, counts, criteria)."""
    fam = borough.family_criteria
    return {
        "generator": "sf_demo.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": borough.seed,
        "as_of": borough.as_of.isoformat(),
        "window_start": window_start(borough.as_of).isoformat(),
        "n_persons": borough.n_persons,
        "n_households": int(pc.count_distinct(borough.persons.column("household_id")).as_py()),
        "n_families": fam.num_rows,
        "eligible_families_internal": int(pc.sum(fam.column("eligible_internal")).as_py() or 0),
        "eligible_families_with_partners": int(pc.sum(fam.column("eligible_with_partners")).as_py() or 0),
        "min_problems": MIN_PROBLEMS,
        "dirt": borough.dirt.as_dict(),
        "headline_problems": HEADLINE_PROBLEMS,
        "sub_criteria": [
            {
                "code": s.code,
                "headline_problem": s.headline,
                "internal_sources": list(s.internal_sources),
                "partner_sources": list(s.partner_sources),
                "rule": s.rule,
            }
            for s in SUB_CRITERIA
        ],
        "counts": dict(counts),
    }


def agency_extracts(truth_root: UPath) -> UPath:
    """Where the voluntary-sector agencies' extracts wait to be sent (``<truth root>/agencies/``)."""
    return truth_root / "agencies"


def write_borough(borough: Borough, root: UPath, truth_root: UPath | None = None) -> dict[str, int]:
    """Write every extract under ``root`` and the truth under ``truth_root`` (default ``root``).

    Returns rows per output (``extracts/neet``: 812). The demo lands the extracts where the departments'
    files would land and keeps the truth apart, where only tests, benchmarks and the partner simulator look.
    """
    truth_root = root if truth_root is None else truth_root
    counts: dict[str, int] = {}
    paths: dict[str, str] = {}
    for name, table in borough.extracts.items():
        spec = borough.sources.sources[name]
        rel = spec.path_for(borough.as_of)
        # An agency's extract is the agency's own until it sends it over SFTP (the partner simulator does,
        # from demo/agencies/): it never lands in the council's landing/ directly.
        where = agency_extracts(truth_root) if spec.inbound is not None else root
        write_bytes_atomic(where / rel, encode_extract(table, spec))
        counts[f"extracts/{name}"] = table.num_rows
        paths[f"extracts/{name}"] = rel
    # The council's postcode-to-ward lookup lands beside the extracts (store/layout.py: ward_lookup_file).
    lookup = ward_lookup(borough.persons)
    write_bytes_atomic(root / "reference" / "postcode_wards.csv", ward_lookup_csv(lookup))
    for key, table in borough.truth_tables().items():
        write_bytes_atomic(truth_root / f"{key}.parquet", _parquet_bytes(table))
        counts[key] = table.num_rows
    doc = manifest(borough, counts)
    doc["paths"] = paths
    write_bytes_atomic(
        truth_root / "truth" / "manifest.json",
        json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n",
    )
    log.info(
        "wrote %d outputs, %d extract rows",
        len(counts),
        sum(v for k, v in counts.items() if k.startswith("extracts/")),
    )
    return counts
