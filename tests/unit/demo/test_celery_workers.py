"""Which demo Celery worker serves which queues, and with which partners' connections only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sf_demo.celery_workers import DEFAULT_QUEUE, HOSTNAME_ENV, hostname, main, plan_workers
from sf_demo.secrets import DemoSpec, SecretsLayout
from supporting_families.config import partner_queue


def _layout(tmp_path: Path, spec: DemoSpec) -> SecretsLayout:
    """Each partner's own connections file, as the generator writes it (placeholders, no secret)."""
    layout = SecretsLayout(tmp_path)
    for code in spec.partners():
        path = layout.partner_connections_file(code)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({f"sf_sftp_{code}": {"conn_type": "sftp"}, f"key_{code}": {}}))
    return layout


def test_one_worker_per_partner_by_default_and_a_central_one_for_the_default_queue(tmp_path: Path) -> None:
    spec = DemoSpec.load()
    layout = _layout(tmp_path, spec)
    plans = plan_workers(spec, layout)
    assert plans[0].queues == (DEFAULT_QUEUE,) and plans[0].connections_file is None
    by_partner = {p.partners: p for p in plans[1:]}
    assert set(by_partner) == {(code,) for code in spec.partners()}
    for (code,), plan in by_partner.items():
        assert plan.queues == (partner_queue(code),)
        assert plan.connections_file == layout.partner_connections_file(code)
    assert len({p.hostname for p in plans}) == len(plans)


def test_fewer_workers_share_the_queues_with_just_their_partners_connections(tmp_path: Path) -> None:
    spec = DemoSpec.load()
    layout = _layout(tmp_path, spec)
    plans = plan_workers(spec, layout, workers=2)[1:]
    assert len(plans) == 2
    assert sorted(q for p in plans for q in p.queues) == sorted(partner_queue(c) for c in spec.partners())
    shared = next(p for p in plans if len(p.partners) > 1)
    assert shared.connections_file is not None
    assert stat.S_IMODE(shared.connections_file.stat().st_mode) == 0o600
    held = set(json.loads(shared.connections_file.read_text()))
    assert held == {k for code in shared.partners for k in (f"sf_sftp_{code}", f"key_{code}")}


@pytest.mark.parametrize("workers", [0, 4])
def test_a_worker_count_outside_one_to_the_partners_is_refused(tmp_path: Path, workers: int) -> None:
    spec = DemoSpec.load()
    with pytest.raises(ValueError, match="between 1 and 3"):
        plan_workers(spec, _layout(tmp_path, spec), workers=workers)
    assert main(["plan", "--secrets-dir", str(tmp_path), "--workers", str(workers)]) == 2


def test_the_plan_lines_name_queues_and_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _layout(tmp_path, DemoSpec.load())
    assert main(["plan", "--secrets-dir", str(tmp_path)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["central", DEFAULT_QUEUE, "sf-worker-central", "-"]
    assert {row[1] for row in lines[1:]} == {"sf_dwp", "sf_met_police", "sf_ons"}


def test_the_hostname_is_the_workers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTNAME_ENV, "sf-worker-dwp")
    assert hostname() == "sf-worker-dwp"
    monkeypatch.delenv(HOSTNAME_ENV)
    assert hostname()
