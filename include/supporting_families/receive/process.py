"""Receive a partner's return: fetch safely, archive, verify, validate, reconcile, merge, or quarantine.

One return answers one delivery and is named after it (docs/STORE.md):
``<return prefix>-<delivery id>.csv.gpg``, the agreement's ``returns.file_pattern`` with its one ``*`` being
the delivery id. The steps, each idempotent per (agreement, file name, SHA-256 of the file as received):

1. :func:`fetch_returns`: download from the partner's outbox with the core SFTP client (host key pinned,
   names checked, symbolic links never followed, a size cap), archive the encrypted original whole under
   ``returns/<agreement>/<file>/`` with ``received.json`` (bytes, hash, when the partner finished writing
   it), and record ``return_received`` in the ledger. Entries refused for their name, type or size are set
   aside in the outbox and recorded as ``quarantine``.
2. :func:`process_return`: decrypt and verify against the partner's pinned fingerprint (no MDC, a wrong or
   missing signature, tampering: refused), validate strictly (``receive_validate``), then for a
   per-reference return reconcile against the delivery's ``references.parquet`` (``receive_reconcile``),
   write ``classified.parquet`` and merge the accepted flags into ``register/partner_flags/``; for a
   receipt (ONS) check the row count and hash against the delivery's manifest. ``reconciliation.json`` is
   written last and marks the return as taken in; the ledger gets a ``reconciliation`` entry.
   Anything wrong with the file moves it to ``quarantine/returns/<agreement>/<file>/`` (the encrypted
   original whole, ``reason.json``, ``report.csv`` with row numbers and no values), records ``quarantine``
   and raises :class:`ReturnQuarantined`; the register is untouched.
3. :func:`clear_outbox`: remove returns taken in or quarantined from the outbox (receive_remote explains
   why), so a bad file is never picked up again and a corrected one is taken in normally.
4. :func:`record_collections`: a ``collection`` entry for each delivery that has left the partner's inbox.

Deadlines: a return that arrives more than ``returns.deadline_days`` after its delivery is
still taken in (its answers are still true), but it is marked late in ``received.json``,
``reconciliation.json`` and the ledger, and logged as an alert; the receive DAG also raises a deadline
alert while it is still waiting (see dags/receive_agreements.py).

Nothing here logs or raises with a value from a return: file names, counts, hashes, rules and row numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from upath import UPath

from supporting_families.audit import Ledger, NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.merge import merge_flags
from supporting_families.receive.quarantine import _quarantine_archived, _quarantined_before, handled_state
from supporting_families.receive.reconcile import (
    reconcile,
    write_classified,
)
from supporting_families.receive.records import (
    Received,
    ReturnPaths,
    RunInfo,
    _entry,
    _stem,
    delivery_id_of,
    ledger_file_name,
)
from supporting_families.receive.validate import (
    MIB,
    ReturnRejected,
    ValidatedReturn,
    validate_return,
)
from supporting_families.share.delivery import Delivery, local_file
from supporting_families.share.package import Manifest
from supporting_families.store.io import (
    private_tempdir,
    write_bytes_atomic,
)
from supporting_families.store.keystore import KeyStore
from supporting_families.transport.openpgp import (
    DecryptionError,
    IntegrityCheckFailed,
    NotIntegrityProtected,
    SignatureError,
    WeakAlgorithm,
    decrypt_and_verify,
)

log = logging.getLogger(__name__)


def _delivered_at(receipt: Mapping[str, Any] | None) -> datetime | None:
    """When a delivery was delivered, by its receipt.json (None if the receipt does not say)."""
    value = (receipt or {}).get("delivered_at")
    return datetime.fromisoformat(str(value)) if value else None


def check_receipt(validated: ValidatedReturn, manifest: Manifest, agreement: Agreement) -> dict[str, Any]:
    """A receipt's row count and hash against the delivery's manifest; ReturnRejected on any difference."""
    receipt = agreement.returns.receipt
    if receipt is None:
        raise ValueError(f"{agreement.id}: the return is not a receipt")
    row = validated.table.to_pylist()[0]
    rows = int(row[receipt.row_count_column])
    expected_sha = manifest.plaintext_sha256 if receipt.hash_of == "plaintext" else manifest.ciphertext_sha256
    problems: list[str] = []
    if rows != manifest.row_count:
        problems.append(f"{receipt.row_count_column} {rows} differs from the manifest's {manifest.row_count}")
    if str(row[receipt.sha256_column]) != expected_sha:
        problems.append(f"{receipt.sha256_column} differs from the manifest's {receipt.hash_of} SHA-256")
    if problems:
        raise ReturnRejected(validated.file, "receipt_mismatch", "; ".join(problems))
    return {"rows_received": rows, "manifest_rows": manifest.row_count, "hash_of": receipt.hash_of}


@dataclass(frozen=True)
class ReturnOutcome:
    """What taking in one return did: counts only (the summary is what XCom carries)."""

    file: str
    agreement_id: str
    delivery_id: str
    kind: Literal["per_reference", "receipt"]
    status: Literal["accepted", "already_accepted"]
    rows: int
    counts: Mapping[str, int]
    flags_merged: int
    late: bool | None
    days_after_delivery: int | None
    ciphertext_sha256: str
    plaintext_sha256: str

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            **dict(self.counts),
            "flags_merged": self.flags_merged,
            "late": bool(self.late),
        }

    def to_json(self) -> bytes:
        data = asdict(self)
        data["counts"] = dict(self.counts)
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, text: str) -> ReturnOutcome:
        data = json.loads(text)
        data["status"] = "already_accepted"
        return cls(**data)


def _decrypt(
    cipher: Path, plain: Path, agreement: Agreement, *, gnupg_home: Path, passphrase: str, name: str
) -> str:
    """Decrypt and verify; the plaintext's SHA-256. Faults of the file become ReturnRejected.

    Problems on the council's side (a missing or expired pinned partner key in our keyring, a wrong
    passphrase, no gpg) are not the file's fault and are raised as they are.
    """
    try:
        result = decrypt_and_verify(
            cipher,
            plain,
            expected_signer_fingerprint=agreement.openpgp.partner_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
            max_plaintext_bytes=agreement.returns.max_size_mib * MIB,
        )
    except (IntegrityCheckFailed, NotIntegrityProtected) as exc:
        raise ReturnRejected(name, "integrity", type(exc).__name__) from None
    except (SignatureError, WeakAlgorithm) as exc:
        raise ReturnRejected(name, "signature", type(exc).__name__) from None
    except DecryptionError as exc:
        if type(exc).__name__ == "PlaintextTooLarge":
            raise ReturnRejected(name, "too_large", f"over {agreement.returns.max_size_mib} MiB") from None
        raise ReturnRejected(name, "decryption", type(exc).__name__) from None
    return result.plaintext_sha256


def process_return(
    store: UPath,
    agreement: Agreement,
    name: str,
    *,
    gnupg_home: Path,
    passphrase: str,
    ledger: Ledger,
    keys: KeyStore,
    run: RunInfo | None = None,
) -> ReturnOutcome:
    """Verify, validate, reconcile (or check the receipt) and merge one archived return.

    ``agreement`` must have its fingerprint resolved. Raises :class:`ReturnQuarantined` (after moving the
    file to quarantine and recording it) when the file is at fault; running it again for the same file
    returns the earlier outcome, or raises the same quarantine again.
    """
    paths = ReturnPaths(store, agreement.id, name)
    state, received = handled_state(store, agreement, name)
    if state == "accepted":
        return ReturnOutcome.from_json(paths.reconciliation_path.read_text())
    if state == "quarantined":
        raise _quarantined_before(store, agreement, name)
    if state == "absent" or received is None:
        raise FileNotFoundError(f"{agreement.id}: {name} was not fetched into the store")
    try:
        outcome = _take(
            store, agreement, paths, received, gnupg_home=gnupg_home, passphrase=passphrase, keys=keys
        )
    except ReturnRejected as exc:
        raise _quarantine_archived(store, agreement, paths, received, exc, ledger=ledger, run=run) from None
    # A late arrival was alerted when it was fetched; the entry below records it again with the counts.
    ledger.append(_reconciliation_entry(agreement, outcome, run))
    log.info("%s: took in %s: %s", agreement.id, name, outcome.summary())
    return outcome


def _take(
    store: UPath,
    agreement: Agreement,
    paths: ReturnPaths,
    received: Received,
    *,
    gnupg_home: Path,
    passphrase: str,
    keys: KeyStore,
) -> ReturnOutcome:
    name = received.name
    delivery_id = delivery_id_of(agreement, name)
    if delivery_id is None:
        raise ReturnRejected(name, "file_name", f"the name does not fit {agreement.returns.file_pattern}")
    delivery = Delivery(store, agreement.id, delivery_id)
    receipt = delivery.receipt()
    if not delivery.manifest_path.exists() or receipt is None:
        raise ReturnRejected(name, "unknown_delivery", f"no delivery {delivery.name} was made")
    with local_file(paths.original) as cipher, private_tempdir("sf-return-") as tmp:
        plain = tmp / _stem(name)
        plaintext_sha256 = _decrypt(
            cipher, plain, agreement, gnupg_home=gnupg_home, passphrase=passphrase, name=name
        )
        validated = validate_return(plain, agreement, name=name)
    manifest = delivery.manifest()
    flags = 0
    counts: dict[str, int]
    if agreement.returns.kind == "receipt":
        checked = check_receipt(validated, manifest, agreement)
        counts = {"rows_received": checked["rows_received"], "manifest_rows": checked["manifest_rows"]}
    else:
        sent = read_references(delivery, keys, agreement)
        reconciliation = reconcile(validated.table, sent, agreement)
        write_classified(reconciliation.classified, paths.classified_path)
        # The answer is dated by the question (the delivery), not by when the file came back, so answers
        # to two deliveries are ordered as the questions were even if the returns arrive out of order.
        merged = merge_flags(
            store,
            agreement,
            reconciliation.accepted,
            return_file=name,
            file_sha256=received.ciphertext_sha256,
            answered_at=_delivered_at(receipt),
        )
        counts, flags = reconciliation.report(), merged.flags
    outcome = ReturnOutcome(
        file=name,
        agreement_id=agreement.id,
        delivery_id=delivery_id,
        kind=agreement.returns.kind,
        status="accepted",
        rows=validated.rows,
        counts=counts,
        flags_merged=flags,
        late=received.late,
        days_after_delivery=received.days_after_delivery,
        ciphertext_sha256=received.ciphertext_sha256,
        plaintext_sha256=plaintext_sha256,
    )
    write_bytes_atomic(paths.reconciliation_path, outcome.to_json())
    return outcome


def read_references(delivery: Delivery, keys: KeyStore, agreement: Agreement | None = None) -> pa.Table:
    """A delivery's reference list, only the columns reconciliation needs (person id, reference).

    Raises :class:`~supporting_families.store.KeyShredded` once the delivery's period key is shredded: its
    references then resolve to nobody, and a late return for it cannot be reconciled."""
    refers_to = "person_ref"
    if agreement is not None and agreement.returns.reference is not None:
        refers_to = agreement.returns.reference.refers_to
    return delivery.references(keys, columns=["person_id", refers_to])


def _reconciliation_entry(agreement: Agreement, outcome: ReturnOutcome, run: RunInfo | None) -> NewEntry:
    details: dict[str, Any] = {
        "outcome": "receipt_confirmed" if outcome.kind == "receipt" else "reconciled",
        **dict(outcome.counts),
        "flags_merged": outcome.flags_merged,
        "delivery_file": f"sf-{agreement.id}-{outcome.delivery_id}.csv.gpg",
    }
    if outcome.late is not None:
        details |= {"late": outcome.late, "days_after_delivery": outcome.days_after_delivery}
    return _entry(
        agreement,
        "reconciliation",
        run,
        occurred_at=datetime.now(UTC),
        row_count=outcome.rows,
        file_name=ledger_file_name(agreement, outcome.file),
        plaintext_sha256=outcome.plaintext_sha256,
        ciphertext_sha256=outcome.ciphertext_sha256,
        details=details,
        idempotency_key=idempotency_key(
            "reconciliation", agreement.id, outcome.file, outcome.ciphertext_sha256
        ),
    )
