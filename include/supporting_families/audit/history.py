"""What the ledger says about the exchanges over time, and about one person.

* :func:`exchange_history`: per partner and ISO week, deliveries and rows sent, return match rates, late
  or missing returns and quarantines (the auditor's charts);
* :func:`disclosure_history`: which partners got which fields about one person, when and why (UK GDPR
  Article 15(1)(c): the recipients to whom personal data have been disclosed). The ledger holds no
  personal data, so the person is found in each delivery's controller-side reference list.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from upath import UPath

from supporting_families.audit.entries import LedgerEntry, LedgerSearch
from supporting_families.audit.ledger import Ledger
from supporting_families.store import KeyStore, read_delivery_references


def _week(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class ExchangeHistory:
    """Per partner, per ISO week (``2026-W14``). Rates are in percent."""

    weeks: list[str] = field(default_factory=list)
    deliveries: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    rows_sent: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    match_rate: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    late_returns: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    missing_returns: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    quarantines: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    def series(self, name: str) -> dict[str, list[float]]:
        """One of the tables above as a list per partner, aligned with :attr:`weeks` (0 where none)."""
        table: dict[str, dict[str, float]] = getattr(self, name)
        return {
            partner: [float(by_week.get(w, 0)) for w in self.weeks]
            for partner, by_week in sorted(table.items())
        }


def _add(table: dict[str, dict[str, int]], entry: LedgerEntry, amount: int = 1) -> None:
    partner = entry.partner or "-"
    week = _week(entry.occurred_at)
    table[partner][week] = table[partner].get(week, 0) + amount


def exchange_history(ledger: Ledger, search: LedgerSearch | None = None) -> ExchangeHistory:
    """The charts' figures over the entries ``search`` matches (its ``kind`` is ignored)."""
    search = search or LedgerSearch()
    history = ExchangeHistory()
    matched: dict[str, dict[str, list[int]]] = defaultdict(dict)
    weeks: set[str] = set()
    for kind in ("disclosure", "reconciliation", "quarantine"):
        for entry in ledger.search_all(replace(search, kind=kind)):
            weeks.add(_week(entry.occurred_at))
            details = entry.details
            if kind == "disclosure":
                _add(history.deliveries, entry)
                _add(history.rows_sent, entry, entry.row_count or 0)
            elif kind == "quarantine":
                _add(history.quarantines, entry)
            else:
                outcome = details.get("outcome")
                if outcome in ("deadline_missed", "no_return"):
                    _add(history.missing_returns, entry)
                    continue
                if details.get("late") is True:
                    _add(history.late_returns, entry)
                sent = sum(int(details.get(k, 0)) for k in ("matched", "rejected_by_partner", "no_trace"))
                if outcome == "reconciled" and sent:
                    cell = matched[entry.partner or "-"].setdefault(_week(entry.occurred_at), [0, 0])
                    cell[0] += int(details.get("matched", 0))
                    cell[1] += sent
    for partner, by_week in matched.items():
        for week, (hit, total) in by_week.items():
            history.match_rate[partner][week] = round(100.0 * hit / total, 1)
    history.weeks = sorted(weeks)
    return history


@dataclass(frozen=True)
class DisclosureRow:
    """One delivery that sent something about the person."""

    delivery_id: str
    agreement: str
    partner: str
    purpose: str
    legal_gateway: tuple[str, ...]
    fields: tuple[str, ...]
    sent_at: datetime


def disclosure_history(store: UPath, ledger: Ledger, person_id: str, keys: KeyStore) -> list[DisclosureRow]:
    """Every disclosure whose delivery's reference list holds ``person_id``, oldest first.

    A delivery whose reference list is gone (deleted by retention, or its key retired) cannot say whether
    the person was in it, and is left out: the ledger entry alone says only that the delivery happened.
    """
    rows: list[DisclosureRow] = []
    for entry in ledger.search_all(LedgerSearch(kind="disclosure")):
        delivery_id = entry.details.get("delivery_id")
        if not entry.agreement_id or not isinstance(delivery_id, str):
            continue
        refs = read_delivery_references(
            store, entry.agreement_id, delivery_id, keys, ["person_id"], [("person_id", "==", person_id)]
        )
        if refs is None or refs.num_rows == 0:
            continue
        rows.append(
            DisclosureRow(
                delivery_id=delivery_id,
                agreement=entry.agreement_id,
                partner=entry.partner or "",
                purpose=entry.purpose or "",
                legal_gateway=tuple(entry.legal_gateways),
                fields=tuple(entry.fields),
                sent_at=entry.occurred_at,
            )
        )
    return rows
