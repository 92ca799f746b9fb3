"""Name vocabularies as index tables, so that names, variants and typos are chosen with integer arrays.

A person holds an index into the base vocabulary; a source record holds an index into the extended vocabulary
(base names, then variants, then typos of both). Strings are only materialised at the end, with one Arrow
``take`` per column, which is what lets a million persons be generated without a Python loop per person.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from sf_demo.synthetic.names import GIVEN_NAME_VARIANTS, TRADITIONS

#: Typos generated per name. A fixed number keeps the typo of (name, k) a pure table lookup.
TYPOS_PER_NAME = 3

# A typo generator that does not depend on the borough seed: the table is the same for every borough, so it is
# built once per process, and a given misspelling of "Olivia" is the same everywhere (as in real data, where
# the same slips recur).
_TYPO_TABLE_SEED = 20191129

_KEYBOARD_NEIGHBOURS = {
    "a": "qsz",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


def _typo(name: str, rnd: random.Random, taken: set[str]) -> str:
    """One keyboard slip that keeps the first letter, as most real misspellings do.

    A slip that happens to spell a real name or variant (Mohamed with a doubled m) is rejected, so a record
    flagged as carrying a typo always differs from every true name, in any letter case.
    """
    letters = [i for i, ch in enumerate(name) if ch.isalpha() and i > 0]
    for _ in range(50):
        if not letters:
            break
        kind = rnd.randrange(4)
        i = rnd.choice(letters)
        if kind == 0 and i + 1 < len(name) and name[i + 1].isalpha() and name[i] != name[i + 1]:
            candidate = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
        elif kind == 1 and len(letters) >= 2:
            candidate = name[:i] + name[i + 1 :]
        elif kind == 2 and name[i].lower() in _KEYBOARD_NEIGHBOURS:
            repl = rnd.choice(_KEYBOARD_NEIGHBOURS[name[i].lower()])
            candidate = name[:i] + (repl.upper() if name[i].isupper() else repl) + name[i + 1 :]
        else:
            candidate = name[: i + 1] + name[i] + name[i + 1 :]
        if candidate.casefold() not in taken:
            return candidate
    fallback = name + name[-1]
    while fallback.casefold() in taken:
        fallback += name[-1]
    return fallback


@dataclass(frozen=True)
class NameVocab:
    """Base names, their variants and their typos, addressed by integer index.

    Layout of ``strings``: ``[0, n_base)`` base names; ``[n_base, n_named)`` variants; then, for every index
    ``i < n_named``, ``TYPOS_PER_NAME`` typos at ``n_named + i * TYPOS_PER_NAME + k``.
    """

    strings: Any  # pa.StringArray
    n_base: int
    n_named: int
    variant_start: npt.NDArray[np.int64]
    variant_count: npt.NDArray[np.int64]

    def typo_index(self, named_index: npt.NDArray[Any], k: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = (
            self.n_named + named_index.astype(np.int64) * TYPOS_PER_NAME + k
        ).astype(np.int64)
        return out

    def take(self, index: npt.NDArray[Any]) -> Any:
        return self.strings.take(pa.array(index, pa.int64()))


@dataclass(frozen=True)
class Sampler:
    """Rank-weighted choice among a subset of a vocabulary (one tradition, one sex)."""

    index: npt.NDArray[np.int64]
    cumulative: npt.NDArray[np.float64]

    def draw(self, rng: np.random.Generator, size: int) -> npt.NDArray[np.int64]:
        u = rng.random(size)
        pos = np.searchsorted(self.cumulative, u, side="right")
        return self.index[np.minimum(pos, len(self.index) - 1)]


def _rank_weights(n: int) -> npt.NDArray[np.float64]:
    # Name frequencies fall off roughly as a power of rank; 0.9 keeps the top name near 5% of its list, as in
    # ONS baby-name tables, instead of the 20% a pure Zipf law would give.
    w = 1.0 / np.power(np.arange(n, dtype=np.float64) + 2.0, 0.9)
    c: npt.NDArray[np.float64] = np.cumsum(w / w.sum())
    return c


def _build(base: list[str], variants: dict[str, tuple[str, ...]]) -> NameVocab:
    rnd = random.Random(_TYPO_TABLE_SEED)  # noqa: S311 - misspellings, not secrets
    named = list(base)
    start = np.zeros(len(base), dtype=np.int64)
    count = np.zeros(len(base), dtype=np.int64)
    for i, name in enumerate(base):
        alts = [v for v in variants.get(name, ()) if v != name]
        start[i] = len(named)
        count[i] = len(alts)
        named.extend(alts)
    taken = {n.casefold() for n in named}
    typos = [_typo(name, rnd, taken) for name in named for _ in range(TYPOS_PER_NAME)]
    strings = pa.array(named + typos, pa.string())
    return NameVocab(strings, len(base), len(named), start, count)


@dataclass(frozen=True)
class Vocabularies:
    given: NameVocab
    surname: NameVocab
    #: ``given_samplers[t][0]`` female, ``[t][1]`` male, for tradition ``t`` in ``TRADITIONS`` order.
    given_samplers: tuple[tuple[Sampler, Sampler], ...]
    surname_samplers: tuple[Sampler, ...]
    tradition_cumulative: npt.NDArray[np.float64]


@lru_cache(maxsize=1)
def vocabularies() -> Vocabularies:
    given_base: list[str] = []
    surname_base: list[str] = []
    given_pos: dict[str, int] = {}
    surname_pos: dict[str, int] = {}

    def intern(name: str, base: list[str], pos: dict[str, int]) -> int:
        if name not in pos:
            pos[name] = len(base)
            base.append(name)
        return pos[name]

    given_samplers = []
    surname_samplers = []
    for tradition in TRADITIONS:
        pair = []
        for names in (tradition.female, tradition.male):
            idx = np.array([intern(n, given_base, given_pos) for n in names], dtype=np.int64)
            pair.append(Sampler(idx, _rank_weights(len(idx))))
        given_samplers.append((pair[0], pair[1]))
        sidx = np.array([intern(n, surname_base, surname_pos) for n in tradition.surnames], dtype=np.int64)
        surname_samplers.append(Sampler(sidx, _rank_weights(len(sidx))))
    shares = np.array([t.share for t in TRADITIONS], dtype=np.float64)
    return Vocabularies(
        given=_build(given_base, GIVEN_NAME_VARIANTS),
        surname=_build(surname_base, {}),
        given_samplers=tuple(given_samplers),
        surname_samplers=tuple(surname_samplers),
        tradition_cumulative=np.cumsum(shares / shares.sum()),
    )
