"""The synthetic borough: deterministic, faithful to sources.yaml, realistic in shape, honest in its truth.

The data is treated as personal data: assertions compare counts and hashes, never rows, so a failure prints
no name, date of birth, postcode, address or UPRN.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from upath import UPath

from sf_demo.synthetic import (
    HEADLINE_PROBLEMS,
    MIN_PROBLEMS,
    SUB_CRITERIA,
    Borough,
    DirtConfig,
    SourceSpec,
    agency_extracts,
    generate_borough,
    load_sources,
    read_extract,
    write_borough,
)
from sf_demo.synthetic.extracts import SOURCE_GENERATORS
from sf_demo.synthetic.names import GIVEN_NAME_VARIANTS
from sf_demo.synthetic.vocab import vocabularies

AS_OF = date(2025, 3, 31)
N = 4000
SEED = 11
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")
BOROUGH_DISTRICTS = {"W8", "W10", "W11", "W14", "SW3", "SW5", "SW7", "SW10"}
SOURCES = load_sources()


def _root(tmp: Path) -> UPath:
    return UPath(tmp.as_uri())


def _count(mask: Any) -> int:
    """How many rows a mask selects. Assertions compare this number, so a failure never prints a row."""
    return int(np.asarray(mask, dtype=bool).sum())


@pytest.fixture(scope="module")
def clean() -> Borough:
    return generate_borough(N, seed=SEED, as_of=AS_OF, dirt=DirtConfig.clean())


@pytest.fixture(scope="module")
def dirty() -> Borough:
    return generate_borough(N, seed=SEED, as_of=AS_OF)


@pytest.fixture(scope="module")
def clean_root(clean: Borough, tmp_path_factory: pytest.TempPathFactory) -> UPath:
    root = _root(tmp_path_factory.mktemp("clean"))
    write_borough(clean, root)
    return root


def _extract_file(root: UPath, spec: SourceSpec) -> UPath:
    """Where write_borough put a source's extract: landing, or the agency's own folder for an agency's."""
    return (agency_extracts(root) if spec.inbound else root) / spec.path_for(AS_OF)


@pytest.fixture(scope="module")
def clean_extracts(clean: Borough, clean_root: UPath) -> dict[str, pd.DataFrame]:
    """Each extract read back with nothing but sources.yaml, with the true person id from the links."""
    links = clean.links.to_pandas()
    out = {}
    for name, spec in SOURCES.sources.items():
        table = read_extract(_extract_file(clean_root, spec).read_bytes(), spec).to_pandas()
        ids = links[links["source"] == name].set_index("record_id")["person_id"]
        table["person_id"] = table["record_id"].map(ids)
        assert table["person_id"].notna().all(), f"{name}: records without a link"
        out[name] = table
    return out


def _digest(root: UPath) -> dict[str, str]:
    return {
        str(p.path)[len(str(root.path)) :]: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


# --- determinism ----------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    digests = []
    for i, seed in enumerate((5, 5, 6)):
        root = _root(tmp_path / str(i))
        write_borough(generate_borough(1500, seed=seed, as_of=AS_OF), root)
        digests.append(_digest(root))
    # extracts, six truth tables, the manifest, the postcode-to-ward lookup
    assert len(digests[0]) == len(SOURCES.sources) + 8
    assert digests[0] == digests[1]
    differing = [k for k in digests[0] if digests[0][k] != digests[2].get(k)]
    assert len(differing) == len(digests[0]), "another seed changes every file"


def test_dirt_does_not_change_who_is_who_or_the_criteria(clean: Borough, dirty: Borough) -> None:
    for attr in ("person_criteria", "family_criteria", "dwp_benefits", "police_events"):
        assert getattr(clean, attr).equals(getattr(dirty, attr)), attr
    columns = ["person_id", "family_id", "given_name", "family_name", "date_of_birth", "uprn"]
    assert clean.persons.select(columns).equals(dirty.persons.select(columns))


# --- sources.yaml ---------------------------------------------------------------------------------------


def test_sources_yaml_describes_exactly_the_generated_sources() -> None:
    assert set(SOURCES.sources) == set(SOURCE_GENERATORS)


@pytest.mark.parametrize("source", list(SOURCES.sources), ids=str)
def test_extract_matches_sources_yaml(source: str, clean: Borough, clean_root: UPath) -> None:
    spec = SOURCES.sources[source]
    # A voluntary-sector agency's extract stays with the agency (demo/agencies/) until it is sent over SFTP.
    path = _extract_file(clean_root, spec)
    assert not (spec.inbound and (clean_root / spec.path_for(AS_OF)).exists())
    assert path.name == f"{source}_{AS_OF.isoformat()}.csv"
    assert fnmatch.fnmatch(spec.path_for(AS_OF), spec.file_glob)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") == (spec.encoding == "utf-8-sig")
    text = data.decode(spec.encoding)
    assert ("\r\n" in text) == (spec.line_terminator == "crlf")
    assert list(clean.extracts[source].column_names) == [c.name for c in spec.columns]
    table = read_extract(data, spec)  # checks header, patterns, codes and nullability
    assert table.num_rows == clean.extracts[source].num_rows > 0
    assert table.column_names == [c.standard for c in spec.columns]


def test_source_quirks_are_in_the_raw_files(clean: Borough) -> None:
    housing = clean.extracts["housing"]
    assert pc.all(pc.invert(pc.match_substring(housing.column("POSTCODE"), " "))).as_py()
    assert pc.all(pc.equal(housing.column("SURNAME"), pc.utf8_upper(housing.column("SURNAME")))).as_py()
    uprn = pc.drop_null(housing.column("UPRN"))
    assert pc.all(pc.less(pc.utf8_length(uprn), 12)).as_py(), "housing holds UPRNs as numbers"
    asb = pc.drop_null(clean.extracts["asb"].column("subject_postcode"))
    assert pc.all(pc.equal(asb, pc.utf8_lower(asb))).as_py()
    edu = clean.extracts["education_attendance"].column("DOB")
    assert pc.all(pc.match_substring_regex(edu, r"^\d{2}/\d{2}/\d{4}$")).as_py()


# --- realistic shape ------------------------------------------------------------------------------------


def test_uprns_are_12_digits_and_one_per_household(clean: Borough) -> None:
    persons = clean.persons.to_pandas()
    not_12_digits = _count(~persons["uprn"].str.fullmatch(r"\d{12}"))
    assert not_12_digits == 0
    households_with_other_uprns = _count(persons.groupby("household_id")["uprn"].nunique() != 1)
    assert households_with_other_uprns == 0
    uprns_shared_by_households = _count(persons.groupby("uprn")["household_id"].nunique() != 1)
    assert uprns_shared_by_households == 0


def test_movers_old_homes_are_other_properties(dirty: Borough) -> None:
    persons = dirty.persons.to_pandas()
    movers = persons[persons["moved_on"].notna()]
    assert len(movers) > 0
    assert _count(~movers["previous_uprn"].str.fullmatch(r"\d{12}")) == 0
    old_home_occupied = _count(movers["previous_uprn"].isin(set(persons["uprn"])))
    assert old_home_occupied == 0
    moved_later = _count(movers["moved_on"] >= AS_OF)
    assert moved_later == 0


def test_postcodes_are_valid_and_in_the_borough(
    clean: Borough, clean_extracts: dict[str, pd.DataFrame]
) -> None:
    postcodes = pd.concat(
        [clean.persons.to_pandas()["postcode"]] + [t["postcode"] for t in clean_extracts.values()]
    )
    invalid = _count(~postcodes.str.fullmatch(POSTCODE.pattern))
    assert invalid == 0
    districts = set(postcodes.str.split(" ").str[0])
    outside, covered = len(districts - BOROUGH_DISTRICTS), len(districts & BOROUGH_DISTRICTS)
    assert outside == 0
    assert covered == len(BOROUGH_DISTRICTS)


def test_households_families_and_ages_are_plausible(clean: Borough) -> None:
    persons = clean.persons.to_pandas()
    age = (pd.Timestamp(AS_OF) - pd.to_datetime(persons["date_of_birth"])).dt.days / 365.25
    persons["age"] = age
    adult_children = _count((persons["role"] == "child") & (persons["age"] >= 18))
    assert adult_children == 0
    minor_adults = _count((persons["role"] != "child") & (persons["age"] < 18))
    assert minor_adults == 0
    assert set(persons["sex"]) == {"F", "M"}
    fam = (
        persons.groupby("family_id")
        .agg(
            oldest_child=("age", lambda a: a[persons.loc[a.index, "role"] == "child"].max()),
            youngest_parent=("age", lambda a: a[persons.loc[a.index, "role"] == "parent"].min()),
        )
        .dropna()
    )
    too_young = _count(fam["youngest_parent"] - fam["oldest_child"] < 15.9)
    assert too_young == 0, "parents are old enough for their children"
    families_per_household = persons.groupby("household_id")["family_id"].nunique()
    assert (families_per_household > 1).mean() > 0.02, "some households hold more than one family"
    lone = persons[persons["role"] == "parent"].groupby("family_id").size()
    assert (lone == 1).mean() > 0.1, "some single-parent families"
    assert 1.8 < len(persons) / persons["household_id"].nunique() < 2.8


def test_names_are_diverse_and_encode_in_windows_1252(clean: Borough) -> None:
    vocab = vocabularies()
    for strings in (vocab.given.strings, vocab.surname.strings):
        for name in strings.to_pylist():
            name.encode("cp1252")
    assert vocab.given.n_base >= 300
    assert vocab.surname.n_base >= 300
    persons = clean.persons
    assert pc.count_distinct(persons.column("given_name")).as_py() > 200
    assert pc.count_distinct(persons.column("family_name")).as_py() > 200


def test_prevalence_most_families_have_no_problem_a_few_percent_are_eligible(clean: Borough) -> None:
    fam = clean.family_criteria.to_pandas()
    assert (fam["problems_with_partners"] == 0).mean() > 0.75
    assert 0.002 < fam["eligible_internal"].mean() < 0.05
    assert 0.01 < fam["eligible_with_partners"].mean() < 0.10


# --- links and dirt -------------------------------------------------------------------------------------

IDENTITY = ("given_name", "family_name", "date_of_birth", "sex", "address_line_1", "postcode", "uprn")


def _mismatches(extract: pd.DataFrame, persons: pd.DataFrame, field: str) -> pd.Series:
    true = extract["person_id"].map(persons.set_index("person_id")[field])
    got = extract[field]
    if field in ("given_name", "family_name", "address_line_1"):
        true, got = true.str.casefold(), got.str.casefold()
    return ~(got == true)


def test_clean_links_are_trivially_exact(clean: Borough, clean_extracts: dict[str, pd.DataFrame]) -> None:
    persons = clean.persons.to_pandas()
    links = clean.links.to_pandas()
    flags = [
        "duplicate",
        "given_name_variant",
        "given_name_typo",
        "family_name_typo",
        "uprn_missing",
        "old_address",
    ]
    flagged = _count(links[flags].any(axis=1))
    assert flagged == 0
    second_records = _count(links.duplicated(["source", "person_id"]))
    assert second_records == 0, "one record per person per source"
    for name, extract in clean_extracts.items():
        for field in IDENTITY:
            if field in extract.columns:
                bad = int(_mismatches(extract, persons, field).sum())
                assert bad == 0, f"{name}.{field}: {bad} records differ from the truth"


def test_dirt_rates_are_roughly_honoured_and_flags_are_honest(tmp_path: Path) -> None:
    dirt = DirtConfig(name_variant=0.3, typo=0.1, missing_uprn=0.2, duplicate=0.1, moved=0.2)
    borough = generate_borough(6000, seed=3, as_of=AS_OF, dirt=dirt)
    root = _root(tmp_path)
    write_borough(borough, root)
    links = borough.links.to_pandas()
    persons = borough.persons.to_pandas()
    originals = links[~links["duplicate"]]
    assert abs(links["duplicate"].sum() / len(originals) - 0.1) < 0.03
    assert abs(links[["given_name_typo", "family_name_typo"]].any(axis=1).mean() - 0.1) < 0.03
    true_given = links["person_id"].map(persons.set_index("person_id")["given_name"])
    has_variant = true_given.isin(GIVEN_NAME_VARIANTS)
    assert abs(links.loc[has_variant, "given_name_variant"].mean() - 0.3) < 0.06
    with_uprn = links["source"].isin([s for s, spec in SOURCES.sources.items() if "uprn" in spec.by_standard])
    assert abs(links.loc[with_uprn, "uprn_missing"].mean() - 0.2) < 0.04
    assert not links.loc[~with_uprn, "uprn_missing"].any()
    moved = persons.groupby("household_id")["moved_on"].first().notna().mean()
    assert abs(moved - 0.2) < 0.03
    assert links["old_address"].sum() > 0

    # The flags say exactly which records differ from the truth, and how.
    for name, spec in SOURCES.sources.items():
        extract = read_extract(_extract_file(root, spec).read_bytes(), spec).to_pandas()
        lk = links[links["source"] == name].set_index("record_id")
        flags = lk.loc[extract["record_id"]].reset_index(drop=True)
        extract["person_id"] = flags["person_id"].to_numpy()
        given_bad = _mismatches(extract, persons, "given_name").to_numpy()
        dishonest = _count(given_bad != (flags["given_name_variant"] | flags["given_name_typo"]).to_numpy())
        assert dishonest == 0, f"{name}.given_name"
        family_bad = _mismatches(extract, persons, "family_name").to_numpy()
        dishonest = _count(family_bad != flags["family_name_typo"].to_numpy())
        assert dishonest == 0, f"{name}.family_name"
        dob_bad = _count(_mismatches(extract, persons, "date_of_birth"))
        assert dob_bad == 0, f"{name}.date_of_birth"
        address_bad = _mismatches(extract, persons, "address_line_1").to_numpy()
        dishonest = _count(address_bad != flags["old_address"].to_numpy())
        assert dishonest == 0, f"{name}.address_line_1"
        if "uprn" in extract.columns:
            dishonest = _count(extract["uprn"].isna().to_numpy() != flags["uprn_missing"].to_numpy())
            assert dishonest == 0, f"{name}.uprn"


# --- truth ------------------------------------------------------------------------------------------------


def test_family_truth_is_internally_consistent(clean: Borough) -> None:
    fam = clean.family_criteria.to_pandas()
    crit = clean.person_criteria.to_pandas()
    for kind in ("internal", "with_partners"):
        cols = [f"{h}_{kind}" for h in HEADLINE_PROBLEMS]
        assert (fam[cols].sum(axis=1) == fam[f"problems_{kind}"]).all()
        assert (fam[f"eligible_{kind}"] == (fam[f"problems_{kind}"] >= MIN_PROBLEMS)).all()
        rows = crit if kind == "with_partners" else crit[crit["origin"] == "internal"]
        derived = rows.groupby(["family_id", "headline_problem"]).size().unstack(fill_value=0) > 0
        for h in HEADLINE_PROBLEMS:
            expected = fam["family_id"].map(derived[h]).fillna(False).astype(bool) if h in derived else False
            assert (fam[f"{h}_{kind}"] == expected).all(), f"{h}_{kind}"
    for h in HEADLINE_PROBLEMS:
        assert (~fam[f"{h}_internal"] | fam[f"{h}_with_partners"]).all()
    headline_of = {s.code: s.headline for s in SUB_CRITERIA}
    assert (crit["sub_criterion"].map(headline_of) == crit["headline_problem"]).all()
    assert set(crit["sub_criterion"]) == {s.code for s in SUB_CRITERIA}, "every sub-criterion occurs"
    two_in_one = crit.groupby(["family_id", "headline_problem"])["sub_criterion"].nunique()
    assert (two_in_one > 1).any(), "some family has two sub-criteria of one headline problem"


def _age(dob: Any, on: date) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def _window(as_of: date) -> date:
    try:
        return as_of.replace(year=as_of.year - 1)
    except ValueError:
        return as_of.replace(year=as_of.year - 1, day=28)


def _reference_engine(
    x: dict[str, pd.DataFrame], dwp: pd.DataFrame, police: pd.DataFrame
) -> set[tuple[str, str, str]]:
    """The rules of truth.py, written again from its docstring, applied to the extracts as read."""
    ws = _window(AS_OF)
    hits: set[tuple[str, str, str]] = set()

    def add(frame: pd.DataFrame, sub: str, source: str) -> None:
        hits.update((p, sub, source) for p in frame["person_id"])

    def active(start: pd.Series, end: pd.Series) -> pd.Series:
        return (start <= AS_OF) & (end.isna() | (end >= AS_OF))

    def in_window(day: pd.Series) -> pd.Series:
        return (day >= ws) & (day <= AS_OF)

    edu = x["education_attendance"].assign(pct=lambda d: d["attendance_pct"].astype(float))
    mean = edu.drop_duplicates(["person_id", "academic_year", "term"]).groupby("person_id")["pct"].mean()
    add(mean[mean < 90.0].reset_index(), "attendance_below_90", "education_attendance")
    csc = x["childrens_social_care"]
    for sub in ("child_in_need", "child_protection_plan"):
        add(
            csc[(csc["episode_type"] == sub) & active(csc["start_date"], csc["end_date"])],
            sub,
            "childrens_social_care",
        )
    hou = x["housing"]
    add(hou[hou["weeks_in_arrears"] >= 8], "rent_arrears", "housing")
    add(
        hou[(hou["sundry_debt"].astype(float) >= 500.0) & ~hou["payment_arrangement"]],
        "unmanaged_debt",
        "housing",
    )
    neet = x["neet"]
    ages = neet["date_of_birth"].map(lambda d: _age(d, AS_OF))
    add(
        neet[neet["activity_code"].isin(["neet_not_available", "neet_seeking"]) & ages.between(16, 24)],
        "neet",
        "neet",
    )
    da = x["domestic_abuse"]
    add(da[in_window(da["incident_datetime"].dt.date)], "domestic_abuse_incident", "domestic_abuse")
    eh = x["early_help"]
    add(
        eh[(eh["need_code"] == "mental_health") & active(eh["identified_date"], eh["closed_date"])],
        "mental_health",
        "early_help",
    )
    yo = x["youth_offending"]
    young = np.array(
        [_age(b, d) < 25 for b, d in zip(yo["date_of_birth"], yo["outcome_date"], strict=True)], dtype=bool
    )
    counted = yo["outcome_type"].isin(["conviction", "youth_caution", "youth_conditional_caution"])
    add(yo[counted & in_window(yo["outcome_date"]) & young], "proven_offence_or_caution", "youth_offending")
    ab = x["asb"]
    add(ab[in_window(ab["intervention_date"])], "asb_intervention", "asb")
    ma = x["debt_advice"]
    add(
        ma[(ma["referral_type"] == "debt_advice") & in_window(ma["referral_date"])],
        "debt_advice_referral",
        "debt_advice",
    )
    add(dwp[dwp["out_of_work"]], "out_of_work_benefits", "dwp")
    add(dwp[dwp["disability_related"]], "disability_benefits", "dwp")
    young = np.array(
        [_age(b, d) < 25 for b, d in zip(police["date_of_birth"], police["event_date"], strict=True)],
        dtype=bool,
    )
    add(
        police[
            police["event_type"].isin(["proven_offence", "caution"]) & in_window(police["event_date"]) & young
        ],
        "proven_offence_or_caution",
        "met_police",
    )
    add(
        police[(police["event_type"] == "asb_intervention") & in_window(police["event_date"])],
        "asb_intervention",
        "met_police",
    )
    return hits


def test_reference_engine_reproduces_the_truth_on_clean_data(
    clean: Borough, clean_extracts: dict[str, pd.DataFrame]
) -> None:
    engine = _reference_engine(
        clean_extracts, clean.dwp_benefits.to_pandas(), clean.police_events.to_pandas()
    )
    truth_rows = clean.person_criteria.to_pandas()
    truth = set(zip(truth_rows["person_id"], truth_rows["sub_criterion"], truth_rows["source"], strict=True))
    assert len(truth) == len(truth_rows)
    only_engine, only_truth = len(engine - truth), len(truth - engine)
    assert only_engine == 0 and only_truth == 0, (
        f"{only_engine} hits only in the engine, {only_truth} only in truth"
    )


def test_boundaries_are_exercised(clean_extracts: dict[str, pd.DataFrame]) -> None:
    ws = _window(AS_OF)
    day_before, yesterday, tomorrow = (
        ws - timedelta(days=1),
        AS_OF - timedelta(days=1),
        AS_OF + timedelta(days=1),
    )
    x = clean_extracts
    found: dict[str, int] = {}
    edu = x["education_attendance"].assign(pct=lambda d: d["attendance_pct"].astype(float))
    per_pupil = edu.groupby("person_id")["pct"].agg(["min", "max"])
    found["attendance 90.0 every term"] = _count((per_pupil["min"] == 90.0) & (per_pupil["max"] == 90.0))
    found["attendance 89.9 every term"] = _count((per_pupil["min"] == 89.9) & (per_pupil["max"] == 89.9))
    csc = x["childrens_social_care"]
    found["episode ends as_of"] = _count(csc["end_date"] == AS_OF)
    found["episode ended the day before"] = _count(csc["end_date"] == yesterday)
    found["episode starts as_of"] = _count(csc["start_date"] == AS_OF)
    eh = x["early_help"]
    found["need closes as_of"] = _count((eh["need_code"] == "mental_health") & (eh["closed_date"] == AS_OF))
    found["need closed the day before"] = _count(
        (eh["need_code"] == "mental_health") & (eh["closed_date"] == yesterday)
    )
    hou = x["housing"]
    debt, arranged = hou["sundry_debt"].astype(float), hou["payment_arrangement"]
    found["8 weeks in arrears"] = _count(hou["weeks_in_arrears"] == 8)
    found["7 weeks in arrears"] = _count(hou["weeks_in_arrears"] == 7)
    found["debt 500.00 unmanaged"] = _count((debt == 500.0) & ~arranged)
    found["debt 499.99 unmanaged"] = _count((debt == 499.99) & ~arranged)
    found["debt 500.00 arranged"] = _count((debt == 500.0) & arranged)
    neet = x["neet"]
    ages = neet["date_of_birth"].map(lambda d: _age(d, AS_OF))
    birthday = neet["date_of_birth"].map(lambda d: (d.month, d.day))
    for age, day in ((16, AS_OF), (15, tomorrow), (25, AS_OF), (24, tomorrow)):
        found[f"NEET aged {age}, birthday {day - AS_OF}"] = _count(
            (ages == age) & (birthday == (day.month, day.day))
        )
    for name, column in (
        ("domestic_abuse", "incident_datetime"),
        ("youth_offending", "outcome_date"),
        ("asb", "intervention_date"),
    ):
        days = pd.to_datetime(x[name][column]).dt.date
        found[f"{name} on the window's first day"] = _count(days == ws)
        found[f"{name} the day before the window"] = _count(days == day_before)
    missing = sorted(k for k, v in found.items() if v == 0)
    assert not missing, f"boundary cases absent: {missing}"


# --- writing ----------------------------------------------------------------------------------------------


def test_write_through_a_upath_returns_counts_and_a_manifest_without_personal_data(
    clean: Borough, tmp_path: Path
) -> None:
    root = _root(tmp_path)
    counts = write_borough(clean, root)
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items())
    assert {k for k in counts if k.startswith("extracts/")} == {f"extracts/{s}" for s in SOURCES.sources}
    assert counts["truth/persons"] == N
    for key in counts:
        if not key.startswith("extracts/"):
            assert (root / f"{key}.parquet").is_file()
    doc = json.loads((root / "truth" / "manifest.json").read_text())
    assert doc["counts"] == counts
    assert doc["seed"] == SEED and doc["as_of"] == AS_OF.isoformat()
    text = json.dumps(doc)
    persons = clean.persons.slice(0, 50).to_pandas()
    for field in ("family_name", "postcode", "uprn"):
        leaked = sum(str(v) in text for v in persons[field])
        assert leaked == 0, f"manifest carries a {field}"


def test_truth_tables_have_the_register_fields(clean: Borough) -> None:
    from supporting_families.store.schemas import REGISTER_SCHEMA

    persons = clean.persons
    for f in REGISTER_SCHEMA:
        assert persons.schema.field(f.name).type == f.type, f.name
    assert persons.column("person_id").null_count == 0
    dwp = clean.dwp_benefits.column_names
    assert {"person_id", "address_line_1", "postcode", "uprn", "out_of_work", "disability_related"} <= set(
        dwp
    )
    police = clean.police_events.column_names
    assert {
        "person_id",
        "given_name",
        "family_name",
        "date_of_birth",
        "postcode",
        "event_type",
        "event_date",
    } <= set(police)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="moved"):
        DirtConfig(moved=0.5)
    with pytest.raises(ValueError, match="typo"):
        DirtConfig(typo=-0.1)
    with pytest.raises(ValueError, match="seed"):
        generate_borough(10, seed=-1, as_of=AS_OF)
    with pytest.raises(ValueError, match="n_persons"):
        generate_borough(0, as_of=AS_OF)
    assert all(v == 0 for v in DirtConfig.clean().as_dict().values())


def test_small_and_leap_day_boroughs_generate() -> None:
    borough = generate_borough(40, seed=1, as_of=date(2024, 2, 29))
    assert borough.persons.num_rows == 40
    assert np.isin(borough.family_criteria.column("n_persons").to_numpy(), np.arange(1, 12)).all()
    assert isinstance(borough.extracts["housing"], pa.Table)
