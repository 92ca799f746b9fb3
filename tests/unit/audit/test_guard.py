"""The ledger's personal-data guard on the shapes that once slipped through: file names and lower-case names.

Against the real SQLite ledger: a refused entry writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supporting_families.audit import Ledger, NewEntry, PersonalDataError, check_details

T0 = datetime(2025, 4, 2, 6, 0, tzinfo=UTC)

#: Synthetic values. A file name is no shelter for a date of birth or an NHS-number-shaped run of digits,
#: and a lower-case name is still a name.
REFUSED = {
    "dob-and-number-in-a-file-name": "dwp-return-1985-03-12-4857773456.csv.gpg",
    "dob-in-a-file-name": "dwp-return-12031985.csv.gpg",
    "long-number-in-a-file-name": "ons-receipt-4857773456.csv",
    "lower-case-name": "john_smith",
    "lower-case-name-dotted": "jane.officer",
    "lower-case-name-hyphen": "mary-jones",
    "lower-case-name-in-a-file-name": "dwp-return-john_smith.csv.gpg",
    "lower-case-given-name-and-initial": "sarah_k",
}

#: What the platform itself writes must still pass: its codes, its file names, its ids.
ACCEPTED = {
    "code": "address_not_confirmed",
    "status": "not_found",
    "rule": "already_received",
    "outcome": "no_return",
    "delivery_file": "sf-dwp-benefits-matching-dabcdefghijklmnop.csv.gpg",
    "return_file": "dwp-return-dabcdefghijklmnop.csv.gpg",
    "receipt": "ons-receipt-dabcdefghijklmnop.csv.gpg",
    "remote_dir": "dwp/supporting-families/inbox",
    "set_aside": "sf-refused-0a1b2c3d4e5f6a7b",
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as book:
        yield book


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_file_name_shapes_and_lower_case_names_are_refused_in_details(value: str) -> None:
    with pytest.raises(PersonalDataError) as caught:
        check_details({"reason": value})
    assert value not in str(caught.value)


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("column", ["file_name", "run_id", "task_id", "triggered_by"])
def test_they_are_refused_in_every_column_and_nothing_is_written(
    ledger: Ledger, value: str, column: str
) -> None:
    columns = {"file_name": "dwp-return-dabcdefghijklmnop.csv.gpg", column: value}
    entry = NewEntry(kind="quarantine", occurred_at=T0, **columns)  # type: ignore[arg-type]
    with pytest.raises(PersonalDataError):
        ledger.append(entry)
    assert ledger.count() == 0


def test_a_staff_member_is_recorded_by_a_pseudonymous_id(ledger: Ledger) -> None:
    name = "dwp-return-dabcdefghijklmnop.csv.gpg"
    ledger.append(
        NewEntry(kind="quarantine", occurred_at=T0, file_name=name, triggered_by="ui:staff-7f3a9c2e")
    )
    with pytest.raises(PersonalDataError):
        ledger.append(
            NewEntry(
                kind="quarantine",
                occurred_at=T0,
                file_name=name,
                triggered_by="ui:jane.officer@council.example",
            )
        )
    assert ledger.count() == 1


def test_what_the_platform_writes_still_passes() -> None:
    assert check_details(ACCEPTED) == ACCEPTED
