"""Key rotation and crypto-shredding on real gpg, the real sshd and real files.

A DWP delivery goes out under key version 1; the agreement is rotated to version 2 in the middle of the
cycle; the next delivery carries v2 references; the partner's answer to the first delivery still
reconciles. Retiring version 1 leaves its references resolving to no one, and once the retention sweep
has shredded the month's key, a leftover copy of the archived delivery can no longer be opened, so the
file the partner was sent cannot be decrypted from it.
"""

# ruff: noqa: F811 - the fixtures imported from test_receive are parameters here
from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.audit import Ledger, LedgerSearch
from supporting_families.config import load_sources
from supporting_families.config.agreements import Agreement
from supporting_families.config.retention import load_retention
from supporting_families.receive.fetch import fetch_returns
from supporting_families.receive.outbox import clear_outbox
from supporting_families.receive.process import process_return
from supporting_families.retention import apply_sweep, plan_sweep
from supporting_families.retention.rotation import retire_version, rotation_entry
from supporting_families.rights import person_deliveries
from supporting_families.share.delivery import (
    Delivery,
    deliver_delivery,
    delivery_id_for,
    encrypt_delivery,
    package_delivery,
    share_view,
)
from supporting_families.share.pseudonymise import PseudonymKey
from supporting_families.store import FileKeyStore, KeyShredded, open_bytes, read_delivery_references
from supporting_families.transport.openpgp import decrypt_and_verify
from tests.integration.exchange.test_receive import (  # noqa: F401 - fixtures
    DWP,
    Shared,
    _register,
    clean_boxes,
    columns,
    dwp_rows,
    ledger,
    partner_collects,
    render,
    send_return,
    store,
)
from tests.integration.platform_fixtures import PlatformEnv

pytestmark = pytest.mark.integration


def _share(
    platform_env: PlatformEnv, store: UPath, agreement: Agreement, key: PseudonymKey, keys: FileKeyStore
) -> Shared:
    persons = _register(12)
    run_id = f"manual__rotation-{uuid.uuid4().hex[:12]}"
    delivery = Delivery(store, agreement.id, delivery_id_for(agreement.id, run_id))
    view, refs = share_view(pa.table({"person_id": persons["person_id"]}), persons, key, agreement)
    manifest = package_delivery(delivery, agreement, view, refs, run_id, keys=keys)
    encrypt_delivery(
        delivery,
        agreement,
        council_fingerprint=platform_env.council_fingerprint,
        passphrase=platform_env.council_passphrase,
        gnupg_home=platform_env.secrets.gnupg_council,
    )
    deliver_delivery(delivery, agreement, platform_env.endpoint(agreement), keys=keys)
    mapping = dict(zip(refs["person_ref"].to_pylist(), refs["person_id"].to_pylist(), strict=True))
    return Shared(agreement, store, delivery, mapping, manifest.plaintext_sha256, manifest.row_count)


def _versions(agreement: Agreement, current: int, previous: tuple[int, ...]) -> Agreement:
    pseudo = agreement.pseudonymisation.model_copy(
        update={"key_version": current, "previous_key_versions": previous}
    )
    return agreement.model_copy(update={"pseudonymisation": pseudo})


def test_a_rotation_mid_cycle_reconciles_the_earlier_return_then_retirement_and_shredding_end_it(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
) -> None:
    keys = FileKeyStore(tmp_path / "data-keys")  # this test shreds keys: never the session's
    dwp = platform_env.agreements[DWP]
    v1 = _versions(dwp, 1, ())
    first = _share(platform_env, store, v1, PseudonymKey(DWP, 1, secrets.token_bytes(32)), keys)
    assert all(ref.startswith("v1-") for ref in first.refs)
    collected_sha = partner_collects(platform_env, first, tmp_path)
    assert collected_sha == first.plaintext_sha256

    # The rotation: a reviewed change of key_version in the YAML, with v1 kept for returns in flight.
    rotated = _versions(dwp, 2, (1,))
    second = _share(platform_env, store, rotated, PseudonymKey(DWP, 2, secrets.token_bytes(32)), keys)
    assert second.delivery.manifest().key_version == 2
    assert all(ref.startswith("v2-") for ref in second.refs)
    entry = rotation_entry(
        rotated,
        second.delivery,
        second.delivery.manifest(),
        dag_id="d",
        run_id="r",
        task_id="t",
        triggered_by="timetable",
    )
    assert entry is not None
    ledger.append(entry)
    ledger.append(entry)  # a retried deliver task records the rotation once
    rotations = ledger.search_all(LedgerSearch(kind="key_rotation"))
    assert [e.details["key_version"] for e in rotations] == [2]

    # The partner's answer to the delivery made before the rotation still reconciles.
    send_return(platform_env, rotated, first.return_name, render(columns(rotated), dwp_rows(first)), tmp_path)
    fetched = fetch_returns(
        store, rotated, platform_env.endpoint(rotated), ledger=ledger, delivery_id=first.delivery.delivery_id
    )
    [name] = fetched.fetched
    outcome = process_return(
        store,
        rotated,
        name,
        gnupg_home=platform_env.secrets.gnupg_council,
        passphrase=platform_env.council_passphrase,
        ledger=ledger,
        keys=keys,
    )
    clear_outbox(store, rotated, platform_env.endpoint(rotated), [name])
    assert not isinstance(outcome, Exception), outcome
    assert outcome.counts["matched"] + outcome.counts["rejected_by_partner"] == first.rows
    assert outcome.counts["unexpected"] == 0, "every v1 reference resolved after the rotation"

    # Retirement: v1 is taken out of the YAML, then its reference lists go; its references resolve to no one.
    retired = retire_version(store, _versions(dwp, 2, ()), 1)
    assert (retired.deliveries, retired.reference_lists_deleted) == (1, 1)
    assert read_delivery_references(store, DWP, first.delivery.delivery_id, keys) is None
    someone = next(iter(first.refs.values()))
    assert [d for _, d, _ in person_deliveries(store, someone, keys)] == [second.delivery.delivery_id]

    # Shredding: a copy of the archive kept somewhere deletion cannot reach opens before, and not after.
    leftover = first.delivery.archive_path.read_bytes()
    context = first.delivery.archive_context
    cipher = tmp_path / "leftover.csv.gpg"
    cipher.write_bytes(open_bytes(leftover, keys, context))
    decrypted = decrypt_and_verify(
        cipher,
        tmp_path / "leftover.csv",
        expected_signer_fingerprint=platform_env.council_fingerprint,
        passphrase=None,
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    assert decrypted.plaintext_sha256 == first.plaintext_sha256, "before shredding, the copy is the file sent"
    policy = load_retention()
    after = policy.ceiling + timedelta(days=1)
    agreements = {DWP: _versions(dwp, 2, ())}
    apply_sweep(store, plan_sweep(store, policy, agreements, load_sources(), after), keys)
    assert keys.periods() == []
    with pytest.raises(KeyShredded):
        open_bytes(leftover, keys, context)
    assert not first.delivery.archive_path.exists() and not second.delivery.references_path.exists()
