"""A share end to end against the real sshd and gpg: package, encrypt, deliver once, record once."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pytest

from supporting_families.audit import Ledger
from supporting_families.share.delivery import (
    Delivery,
    deliver_delivery,
    delivery_id_for,
    disclosure_entry,
    encrypt_delivery,
    package_delivery,
    share_view,
)
from supporting_families.store import store_root
from supporting_families.transport.openpgp import decrypt_and_verify
from tests.integration.platform_fixtures import PlatformEnv, small_register
from tests.store_walk import permission_problems

pytestmark = pytest.mark.integration


def _register(n: int) -> pa.Table:
    return small_register(n, first_birth_year=1980)


@pytest.mark.parametrize("agreement_id", ["dwp-benefits-matching", "met-police-wider-help"])
def test_partner_decrypts_verifies_and_finds_exactly_the_agreed_fields(
    platform_env: PlatformEnv, tmp_path: Path, agreement_id: str
) -> None:
    agreement = platform_env.agreements[agreement_id]
    store = store_root((tmp_path / "store").as_uri())
    persons = _register(30)
    cohort = pa.table({"person_id": persons["person_id"].to_pylist()[:20]})
    run_id = f"manual__{agreement_id}"
    delivery = Delivery(store, agreement.id, delivery_id_for(agreement.id, run_id))

    view, refs = share_view(cohort, persons, platform_env.key(agreement), agreement)
    manifest = package_delivery(delivery, agreement, view, refs, run_id, keys=platform_env.data_keys)
    # The staged plaintext and the reference list are personal data: owner only (privacy notice: "held
    # securely").
    assert permission_problems(tmp_path / "store") == []
    manifest = encrypt_delivery(
        delivery,
        agreement,
        council_fingerprint=platform_env.council_fingerprint,
        passphrase=platform_env.council_passphrase,
        gnupg_home=platform_env.secrets.gnupg_council,
    )
    assert not delivery.staging_csv.exists(), "plaintext must not outlive encryption"
    receipt = deliver_delivery(
        delivery, agreement, platform_env.endpoint(agreement), keys=platform_env.data_keys
    )
    assert receipt["status"] == "delivered"

    # The partner's side: its own keyring decrypts, and the council's signature verifies.
    delivered = platform_env.inbox(agreement) / str(manifest.ciphertext_name)
    plain = tmp_path / "partner.csv"
    result = decrypt_and_verify(
        delivered,
        plain,
        expected_signer_fingerprint=platform_env.council_fingerprint,
        passphrase=None,
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    assert result.plaintext_sha256 == manifest.plaintext_sha256
    rows = list(csv.reader(io.StringIO(plain.read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == agreement.fields
    assert len(rows) - 1 == 20 == manifest.row_count
    sent_refs = {r[0] for r in rows[1:]}
    assert sent_refs == set(refs["person_ref"].to_pylist())

    # Running the deliver step again for the same logical run sends nothing.
    again = deliver_delivery(
        delivery, agreement, platform_env.endpoint(agreement), keys=platform_env.data_keys
    )
    assert again["status"] == "already_delivered"
    # Even if the receipt were lost, the SFTP layer finds the same bytes and sends nothing.
    delivery.receipt_path.unlink()
    third = deliver_delivery(
        delivery, agreement, platform_env.endpoint(agreement), keys=platform_env.data_keys
    )
    assert third["status"] == "already_present" and third["bytes_sent"] == 0

    # One disclosure in the ledger, however often the task records it.
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        for _ in range(2):
            ledger.append(
                disclosure_entry(
                    agreement,
                    delivery,
                    manifest,
                    receipt,
                    dag_id=f"share__{agreement.dag_id_suffix}",
                    run_id=run_id,
                    task_id="deliver",
                    try_number=1,
                    triggered_by="manual",
                    counts={"selected": 20, "excluded_by_restriction": 0},
                )
            )
        assert ledger.count("disclosure") == 1
        assert ledger.verify().ok
    assert permission_problems(tmp_path / "store") == []
    delivered.unlink()
