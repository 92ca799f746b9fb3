"""Receive against the real sshd, gpg and ledger when the partner is hostile or the council side fails.

A partner-chosen name that looks like personal data, a crash between archiving a return and recording it,
and a compressed OpenPGP bomb: each ends with nothing personal written and every return recorded once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from supporting_families.audit import Ledger
from supporting_families.receive.fetch import fetch_returns
from supporting_families.receive.process import process_return
from supporting_families.receive.quarantine import ReturnQuarantined
from supporting_families.receive.records import ReturnPaths
from tests.integration.exchange.test_receive import (
    DWP,
    ONS,
    clean_boxes,
    columns,
    dwp_rows,
    ledger,
    partner_collects,
    receive,
    render,
    send_return,
    share,
    store,
)
from tests.integration.platform_fixtures import PlatformEnv

pytestmark = pytest.mark.integration
__fixtures__ = (clean_boxes, ledger, store)  # the receive tests' own fixtures, shared

#: A name a partner could choose: it matches ``dwp-return-*.csv.gpg`` and carries a date of birth and an
#: NHS-number-shaped run of digits (both synthetic).
DOB_NAME = "dwp-return-1985-03-12-4857773456.csv.gpg"


def _name_sha256(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


def _everything_in(ledger: Ledger) -> str:
    return "\n".join(json.dumps(e.to_dict(), default=str) for e in ledger.entries())


def test_a_partner_name_that_looks_like_personal_data_reaches_the_ledger_only_hashed(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    send_return(platform_env, agreement, DOB_NAME, render(columns(agreement), dwp_rows(shared)), tmp_path)

    # Everything at INFO (what a task log shows), and the platform's own loggers at DEBUG.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="supporting_families")
    # A manual run fetches by the agreement's glob, so the name is taken in; it answers no delivery.
    summary = fetch_returns(store, agreement, platform_env.endpoint(agreement), ledger=ledger, backoff=0.1)
    for name in summary.fetched:
        with pytest.raises(ReturnQuarantined) as caught:
            process_return(
                store,
                agreement,
                name,
                gnupg_home=platform_env.secrets.gnupg_council,
                passphrase=platform_env.council_passphrase,
                ledger=ledger,
                keys=platform_env.data_keys,
            )
        # The name's date as it stands in the name: a bare "1985" also turns up by chance in the hex of the
        # hashes these texts carry (it did, in one CI run in a few).
        assert "1985-03-12" not in str(caught.value) and "4857773456" not in str(caught.value)

    recorded = _everything_in(ledger)
    assert ledger.count() >= 1
    assert "1985-03-12" not in recorded and "4857773456" not in recorded
    assert _name_sha256(DOB_NAME) in recorded, "the name is recorded by its hash"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "4857773456" not in logged and "1985-03-12" not in logged
    assert ledger.verify().ok


def test_fetch_logs_partner_names_by_hash_only(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    content = render(columns(agreement), dwp_rows(shared))
    hostile = "dwp-return-jo-bloggs-\x1b[31m.csv.gpg"
    send_return(platform_env, agreement, hostile, content, tmp_path)
    send_return(platform_env, agreement, DOB_NAME, content, tmp_path)

    # Everything at INFO (what a task log shows), and the platform's own loggers at DEBUG.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="supporting_families")
    fetch_returns(store, agreement, platform_env.endpoint(agreement), ledger=ledger, backoff=0.1)

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bloggs" not in logged, "no escaped form of a hostile name either"
    assert "4857773456" not in logged and "1985-03-12" not in logged
    assert _name_sha256(hostile) in logged and _name_sha256(DOB_NAME) in logged


def test_return_received_is_recorded_once_after_a_crash_between_archiving_and_recording(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    send_return(
        platform_env, agreement, shared.return_name, render(columns(agreement), dwp_rows(shared)), tmp_path
    )
    real_append = Ledger.append

    def crash_on_return_received(self: Ledger, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if entry.kind == "return_received":
            raise ConnectionError("the ledger went away")
        return real_append(self, entry, *args, **kwargs)

    monkeypatch.setattr(Ledger, "append", crash_on_return_received)
    with pytest.raises(ConnectionError):
        fetch_returns(
            store,
            agreement,
            platform_env.endpoint(agreement),
            ledger=ledger,
            delivery_id=shared.delivery.delivery_id,
        )
    paths = ReturnPaths(store, agreement.id, shared.return_name)
    assert paths.received_path.exists(), "the crash came after received.json was written"
    monkeypatch.setattr(Ledger, "append", real_append)

    endpoint = platform_env.endpoint(agreement)
    for _ in range(2):  # the task's retry, then one more run: nothing new
        summary = fetch_returns(
            store, agreement, endpoint, ledger=ledger, delivery_id=shared.delivery.delivery_id
        )
        assert summary.fetched == (shared.return_name,)

    kinds = [e.kind for e in ledger.entries()]
    assert kinds.count("return_received") == 1
    assert ledger.verify().ok


@pytest.mark.parametrize("algorithm", ["zlib", "bzip2"])
def test_a_compressed_openpgp_bomb_is_refused_within_the_size_cap(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    algorithm: str,
) -> None:
    shared = share(platform_env, store, ONS)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    cap = agreement.returns.max_size_mib * 1024 * 1024
    bomb_bytes = 64 * cap  # zeros: a few hundred KiB of ciphertext
    cipher = tmp_path / f"bomb-{uuid.uuid4().hex[:6]}.gpg"
    # gpg itself, with its own compression: the partner's key signs, the council's key is the recipient.
    with subprocess.Popen(["head", "-c", str(bomb_bytes), "/dev/zero"], stdout=subprocess.PIPE) as zeros:
        made = subprocess.run(
            [
                "gpg", "--homedir", str(platform_env.secrets.gnupg_partners), "--batch", "--yes",
                "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always",
                "--compress-algo", algorithm, "-z", "9", "--sign", "--encrypt",
                "-u", f"{agreement.openpgp.partner_fingerprint}!",
                "-r", platform_env.council_fingerprint, "--output", str(cipher),
            ],
            stdin=zeros.stdout,
            capture_output=True,
        )  # fmt: skip
    assert made.returncode == 0, made.stderr.decode(errors="replace")
    assert cipher.stat().st_size < cap, "a real bomb: small on the wire"
    packets = subprocess.run(
        ["gpg", "--homedir", str(platform_env.secrets.gnupg_council), "--batch", "--list-packets",
         "--pinentry-mode", "loopback", "--passphrase", platform_env.council_passphrase, str(cipher)],
        capture_output=True,
    )  # fmt: skip
    assert b"compressed packet" in packets.stdout
    outbox = platform_env.outbox(agreement)
    (outbox / f".{shared.return_name}.up").write_bytes(cipher.read_bytes())
    (outbox / f".{shared.return_name}.up").rename(outbox / shared.return_name)

    [result] = receive(platform_env, shared, ledger)

    assert isinstance(result, ReturnQuarantined)
    assert result.rule == "too_large"
    leftovers = [p for p in Path(str(store.path)).rglob("*") if p.is_file() and p.stat().st_size >= cap]
    assert leftovers == [], "no plaintext of the bomb's size was written anywhere in the store"
    quarantine = [e for e in ledger.entries() if e.kind == "quarantine"]
    assert len(quarantine) == 1
    assert ledger.verify().ok
