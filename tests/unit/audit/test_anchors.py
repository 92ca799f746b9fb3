"""Anchors kept outside the ledger's database: a truncated or re-hashed tail, invisible to the chain alone,
fails against them; an anchor is never laid on a chain that is already wrong, nor replaced."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from upath import UPath

from supporting_families.audit import TABLE_NAME, Anchor, Ledger, NewEntry
from supporting_families.audit.anchors import (
    AnchorError,
    anchor,
    anchor_path,
    keep_anchor,
    read_anchors,
    verify_with_anchors,
)
from supporting_families.audit.cli import main

T0 = datetime(2025, 4, 2, 6, 0, tzinfo=UTC)


def entry(n: int) -> NewEntry:
    return NewEntry(kind="assessment", occurred_at=T0, details={"families": n})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{db_path}") as opened:
        yield opened


@pytest.fixture
def folder(tmp_path: Path) -> UPath:
    return UPath((tmp_path / "anchors").as_uri())


def truncate_tail(db_path: Path, from_seq: int) -> None:
    """Drop the tail as an attacker with the file would, then put the append-only triggers back."""
    with sqlite3.connect(db_path) as conn:
        triggers = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (TABLE_NAME,)
        ).fetchall()
        conn.execute(f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_delete")
        conn.execute(f"DELETE FROM {TABLE_NAME} WHERE seq >= ?", (from_seq,))  # noqa: S608
        conn.execute(f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_update")
        for (sql,) in triggers:
            conn.execute(sql)


def test_an_empty_ledger_keeps_no_anchor(ledger: Ledger, folder: UPath) -> None:
    result = anchor(ledger, folder)
    assert result.outcome == "empty_ledger" and result.anchor is None
    assert read_anchors(folder) == []


def test_the_head_is_kept_once_and_checked_from_then_on(ledger: Ledger, folder: UPath) -> None:
    ledger.append_many([entry(1), entry(2)])
    first = anchor(ledger, folder)
    assert first.outcome == "kept" and first.anchor == ledger.head()
    assert anchor_path(folder, 2).read_text() == f"{ledger.head()}\n"
    assert anchor(ledger, folder).outcome == "already_kept", "a retried run keeps nothing new"

    ledger.append(entry(3))
    third = anchor(ledger, folder)
    assert third.to_dict() == {
        "anchor": str(ledger.head()),
        "outcome": "kept",
        "entries": 3,
        "anchors_checked": 1,
    }
    assert [a.seq for a in read_anchors(folder)] == [2, 3]


def test_a_dropped_tail_fails_the_next_anchoring_and_verify(
    db_path: Path, ledger: Ledger, folder: UPath
) -> None:
    ledger.append_many([entry(n) for n in range(5)])
    anchor(ledger, folder)
    truncate_tail(db_path, from_seq=4)
    assert ledger.verify().ok, "on its own the shortened chain is whole"

    report = verify_with_anchors(ledger, folder)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 5, "truncated")
    with pytest.raises(AnchorError, match=r"fails verification at seq 5 \(truncated"):
        anchor(ledger, folder)
    assert [a.seq for a in read_anchors(folder)] == [5], "nothing is anchored on the wrong chain"


def test_a_tail_rebuilt_to_the_same_length_cannot_replace_its_anchor(
    db_path: Path, ledger: Ledger, folder: UPath
) -> None:
    ledger.append_many([entry(n) for n in range(3)])
    kept = anchor(ledger, folder).anchor
    assert kept is not None
    forged = Anchor(kept.seq, "0" * 64)
    with pytest.raises(AnchorError, match="the chain was rewritten"):
        keep_anchor(folder, forged)
    assert read_anchors(folder) == [kept]


def test_anchor_files_are_read_strictly(folder: UPath) -> None:
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text("other files are not anchors")
    anchor_path(folder, 7).write_text(f"7:{'a' * 64}\n")
    assert read_anchors(folder) == [Anchor(7, "a" * 64)]

    anchor_path(folder, 8).write_text(f"9:{'b' * 64}\n")
    with pytest.raises(AnchorError, match=r"000000000008\.anchor: holds the anchor of seq 9"):
        read_anchors(folder)
    anchor_path(folder, 8).write_text("not an anchor\n")
    with pytest.raises(AnchorError, match=r"000000000008\.anchor: not an anchor"):
        read_anchors(folder)


def _cli(args: list[str]) -> tuple[int, str]:
    out = StringIO()
    with redirect_stdout(out):
        code = main(args)
    return code, out.getvalue()


def test_the_cli_anchors_and_verifies_against_the_folder(
    db_path: Path, ledger: Ledger, folder: UPath
) -> None:
    url = f"sqlite:///{db_path}"
    ledger.append_many([entry(n) for n in range(4)])
    code, out = _cli(["anchor", "--url", url, "--to", str(folder)])
    assert code == 0 and json.loads(out)["anchor"] == str(ledger.head())
    code, out = _cli(["verify", "--url", url, "--anchors-from", str(folder)])
    assert code == 0 and json.loads(out)["anchors_checked"] == 1

    truncate_tail(db_path, from_seq=3)
    code, out = _cli(["verify", "--url", url, "--anchors-from", str(folder)])
    assert code == 1 and json.loads(out)["reason"] == "truncated"
    assert _cli(["anchor", "--url", url, "--to", str(folder)])[0] == 1
    assert _cli(["anchor", "--url", url])[0] == 2, "no folder given and none in the environment"
