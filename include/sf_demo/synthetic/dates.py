"""Calendar rules shared by the generator and its ground truth, so both count days and years the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

DateArray = npt.NDArray[np.datetime64]


def minus_years(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def window_start(as_of: date) -> date:
    """First day of the "within the last 12 months" window ending on ``as_of`` (both ends inclusive).

    The window is ``[as_of minus one calendar year, as_of]``: for 31 March 2025 it is 31 March 2024 to
    31 March 2025, so an event exactly 12 months before counts and one 12 months and a day before does not.
    """
    return minus_years(as_of, 1)


def np_day(day: date) -> np.datetime64:
    return np.datetime64(day.isoformat(), "D")


def ymd(days: DateArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    y = years.astype(np.int64) + 1970
    m = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    d = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, d


def ages_on(dob: DateArray, on: date | DateArray) -> npt.NDArray[np.int64]:
    """Completed years of age on ``on``: the birthday counts from its own date, 29 February from 1 March."""
    y, m, d = ymd(dob)
    if isinstance(on, date):
        oy, om, od = on.year, on.month, on.day
        before: Any = (om < m) | ((om == m) & (od < d))
        return np.asarray(oy - y - before, dtype=np.int64)
    qy, qm, qd = ymd(on)
    before = (qm < m) | ((qm == m) & (qd < d))
    return np.asarray(qy - y - before, dtype=np.int64)


def add_years(days: DateArray, years: int | npt.NDArray[np.int64]) -> DateArray:
    """Each date moved by whole years, 29 February landing on 28 February in a common year."""
    y, m, d = ymd(days)
    month_start = ((y + years - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    month_end = (month_start + 1).astype("datetime64[D]") - 1
    out: DateArray = np.minimum(month_start.astype("datetime64[D]") + (d - 1), month_end)
    return out


@dataclass(frozen=True)
class Term:
    academic_year: str  # "2024/25"
    term: str  # "autumn" | "spring" | "summer"
    start: date
    end: date


def _terms_of(academic_start_year: int) -> list[Term]:
    label = f"{academic_start_year}/{(academic_start_year + 1) % 100:02d}"
    y = academic_start_year
    # Simplified term dates: English maintained schools' terms fall within these bounds every year.
    return [
        Term(label, "autumn", date(y, 9, 1), date(y, 12, 20)),
        Term(label, "spring", date(y + 1, 1, 5), date(y + 1, 3, 31)),
        Term(label, "summer", date(y + 1, 4, 15), date(y + 1, 7, 22)),
    ]


def last_three_terms(as_of: date) -> list[Term]:
    """The three most recent school terms that ended on or before ``as_of``, oldest first."""
    terms = [t for y in range(as_of.year - 3, as_of.year + 1) for t in _terms_of(y) if t.end <= as_of]
    return terms[-3:]


def days_between(start: DateArray, end: DateArray) -> npt.NDArray[np.int64]:
    return np.asarray((end - start).astype(np.int64), dtype=np.int64)


def uniform_dates(rng: np.random.Generator, low: DateArray, high: DateArray) -> DateArray:
    """A uniformly random day in ``[low, high]`` (inclusive) for each pair; ``high < low`` gives ``low``."""
    span = np.maximum(days_between(low, high), 0)
    offset = (rng.random(len(span)) * (span + 1)).astype(np.int64)
    out: DateArray = low + offset.astype("timedelta64[D]")
    return out
