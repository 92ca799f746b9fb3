"""Demo only: a synthetic borough's departments drop their extracts into the landing area."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task

from sf_airflow.common import DEFAULT_ARGS, INTERNAL_EXTRACTS, START_DATE, store


@dag(
    dag_id="demo_synthetic_borough",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "demo", "synthetic"],
    params={
        "persons": Param(10_000, type="integer", minimum=100, maximum=5_000_000, title="Persons"),
        "seed": Param(2026, type="integer", title="Seed", description="same seed, same borough"),
        "as_of": Param("2026-03-31", type="string", format="date", title="Extract date"),
        "dirt": Param(
            "clean",
            enum=["clean", "default"],
            title="Dirt",
            description="clean: identification must equal the ground truth exactly; default: name variants, "
            "typos, missing UPRNs, duplicates and movers at the generator's default rates",
        ),
    },
    doc_md="""
### Synthetic borough (demo)

Stands in for the council's departments: generates a synthetic borough (deterministic from the seed)
and writes each department's extract into `landing/extracts/<source>/` in that department's own format
(`include/sources.yaml`): education attendance, children's social care, housing, NEET, early help and
health, domestic abuse, youth offending, anti-social behaviour and children's centres.

The ground truth (who is who, which family meets which criterion, what DWP and the police hold) is
written apart, under `demo/`, for tests, benchmarks and the partner simulator; the platform never reads
it. The data is synthetic but handled as if it were real: only counts reach the logs and XCom.
""",
)
def demo_synthetic_borough() -> None:
    @task(outlets=[INTERNAL_EXTRACTS])
    def generate(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from datetime import date

        import pyarrow.compute as pc

        from sf_demo.synthetic import DirtConfig, generate_borough, write_borough

        assert params is not None
        root = store()
        dirt = DirtConfig.clean() if params.get("dirt", "clean") == "clean" else DirtConfig()
        borough = generate_borough(
            int(params["persons"]),
            seed=int(params["seed"]),
            as_of=date.fromisoformat(params["as_of"]),
            dirt=dirt,
        )
        counts = write_borough(borough, root / "landing", truth_root=root / "demo")
        # The ground truth's count, to compare with identification's: households (the register's families)
        # with at least two headline problems from the internal sources. A count, never a person.
        internal = borough.person_criteria.filter(pc.equal(borough.person_criteria["origin"], "internal"))
        per = internal.group_by("household_id").aggregate([("headline_problem", "count_distinct")])
        eligible = per.filter(pc.greater_equal(per["headline_problem_count_distinct"], 2)).num_rows
        summary = {
            "persons generated": int(params["persons"]),
            "dirt": params.get("dirt", "clean"),
            "ground truth: eligible families from internal sources": int(eligible),
        }
        summary.update(
            {
                k.replace("extracts/", "extract rows: "): v
                for k, v in counts.items()
                if k.startswith("extracts/")
            }
        )
        return summary

    generate()


demo_synthetic_borough()
