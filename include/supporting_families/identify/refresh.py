"""One register refresh: the sources' latest extracts, less erased persons, linked, with corrections applied.

The ``identify_families`` DAG's first step. Two of the data subjects' rights act here, because the register
is rebuilt from the sources every time:

* erasure: records whose identifying keys have a tombstone are dropped before linkage, so an erased person
  does not come back with the departments' next extracts (:mod:`supporting_families.registers.tombstones`);
* rectification: a corrected value outranks the sources until they agree
  (:mod:`supporting_families.registers.corrections`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from upath import UPath

from supporting_families.identify.linkage import (
    build_register,
    identities_from_curated,
    load_register_state,
    save_register,
)
from supporting_families.identify.store import read_latest_curated
from supporting_families.registers.corrections import apply_corrections, read_corrections, save_corrections
from supporting_families.registers.tombstones import drop_tombstoned, read_tombstones


def refresh_register(root: UPath, sources: list[str], *, tombstone_key: bytes | None) -> dict[str, Any]:
    """Rebuild and save the register; returns counts only (safe for XCom and logs)."""
    curated, _as_of = read_latest_curated(root, sources)
    if not curated:
        raise RuntimeError("no curated extracts under curated/: run the ingest DAGs first")
    identities = identities_from_curated(curated.values())
    identities, erased = drop_tombstoned(tombstone_key, identities, read_tombstones(root))
    result = build_register(identities, load_register_state(root))
    corrections = read_corrections(root)
    persons, corrections_after, counts = apply_corrections(result.persons, corrections)
    result = replace(result, persons=persons)
    save_register(result, root)
    if counts["settled"]:
        save_corrections(root, corrections_after)
    return {
        **result.stats.as_dict(),
        "records_dropped_by_tombstone": erased,
        "corrections_applied": counts["applied"],
        "corrections_settled": counts["settled"],
    }
