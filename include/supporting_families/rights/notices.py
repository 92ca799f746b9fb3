"""Rectification and erasure notices to partners (UK GDPR Article 19), over the normal delivery path.

A controller that has disclosed personal data tells each recipient of a rectification or an erasure. A
notice is a small CSV (``notice``, ``person_ref`` as sent to that partner, and for a rectification the
corrected fields the agreement allows), encrypted to the partner's pinned key alone and signed by the
council, delivered by SFTP exactly once like a delivery, and recorded as a ``disclosure`` whose details say
``notice: rectification`` or ``notice: erasure``.

Its folder, ``notices/<agreement>/<notice id>/``, keeps the encrypted file, ``manifest.json`` and
``receipt.json``: the same idempotency as a delivery, so a retried task sends nothing twice. The file name
``sf-<agreement>-<notice id>-<kind>.csv.gpg`` is not a delivery's name, so a partner's collection of
deliveries never mistakes one for the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.registers.requests import HEX_AS_LETTERS
from supporting_families.rights.actions import OpenPgp, Run
from supporting_families.share.package import neutralise_formulas, to_csv_text_columns
from supporting_families.store.io import (
    copy_into,
    private_tempdir,
    sha256_of,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.store.layout import notice_dir
from supporting_families.transport.openpgp import encrypt_and_sign
from supporting_families.transport.sftp import SftpEndpoint, deliver

NoticeKind = Literal["rectification", "erasure"]


def notice_id_for(kind: NoticeKind, agreement_id: str, request_id: str) -> str:
    """``n`` and 16 letters from the request: one notice per request and agreement, whatever the retries."""
    digest = hashlib.sha256(f"{kind}\n{agreement_id}\n{request_id}".encode()).hexdigest()[:16]
    return "n" + digest.translate(HEX_AS_LETTERS)


@dataclass(frozen=True)
class Notice:
    store: UPath
    agreement_id: str
    notice_id: str
    kind: NoticeKind

    @property
    def folder(self) -> UPath:
        return notice_dir(self.store, self.agreement_id, self.notice_id)

    @property
    def file_name(self) -> str:
        return f"sf-{self.agreement_id}-{self.notice_id}-{self.kind}.csv.gpg"

    @property
    def ciphertext(self) -> UPath:
        return self.folder / self.file_name

    @property
    def manifest_path(self) -> UPath:
        return self.folder / "manifest.json"

    @property
    def receipt_path(self) -> UPath:
        return self.folder / "receipt.json"

    @property
    def references_path(self) -> UPath:
        """person_id -> person_ref of this notice (personal data by id, like a delivery's list)."""
        return self.folder / "references.parquet"

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return data

    def receipt(self) -> dict[str, Any] | None:
        if not self.receipt_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.receipt_path.read_text())
        return data


def notice_table(kind: NoticeKind, person_refs: list[str], corrected: dict[str, object]) -> pa.Table:
    """The notice's rows: one per reference the partner holds for the person."""
    columns: dict[str, list[object]] = {"notice": [kind] * len(person_refs), "person_ref": list(person_refs)}
    for field, value in corrected.items():
        columns[field] = [value] * len(person_refs)
    return pa.table(columns)


def prepare_notice(
    notice: Notice,
    agreement: Agreement,
    table: pa.Table,
    person_id: str,
    *,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> dict[str, Any]:
    """Write and encrypt the notice once; returns its manifest (counts, field names and hashes)."""
    existing = notice.manifest()
    if existing is not None and notice.ciphertext.exists():
        return existing
    with private_tempdir("sf-notice-") as tmp:
        plain = tmp / "notice.csv"
        ready = neutralise_formulas(to_csv_text_columns(table))
        with plain.open("wb") as fh:
            pacsv.write_csv(ready, fh, write_options=pacsv.WriteOptions(quoting_style="needed"))
        plain.chmod(0o600)
        out = tmp / notice.file_name
        result = encrypt_and_sign(
            plain,
            out,
            recipient_fingerprint=agreement.openpgp.partner_fingerprint,
            signer_fingerprint=council_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
        )
        copy_into(out, notice.ciphertext)
    write_parquet(
        pa.table({"person_id": [person_id] * table.num_rows, "person_ref": table["person_ref"]}),
        notice.references_path,
    )
    manifest = {
        "kind": notice.kind,
        "agreement_id": agreement.id,
        "notice_id": notice.notice_id,
        "fields": [c for c in table.column_names if c not in ("notice",)],
        "row_count": table.num_rows,
        "plaintext_sha256": result.plaintext_sha256,
        "ciphertext_sha256": result.ciphertext_sha256,
        "file_name": notice.file_name,
        "created_at": datetime.now(UTC).isoformat(),
    }
    write_bytes_atomic(notice.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest


def deliver_notice(notice: Notice, agreement: Agreement, endpoint: SftpEndpoint) -> dict[str, Any]:
    """Send the notice to the partner's inbox exactly once; returns the receipt."""
    existing = notice.receipt()
    if existing is not None:
        return {**existing, "status": "already_delivered"}
    manifest = notice.manifest()
    if manifest is None:
        raise RuntimeError(f"{agreement.id} {notice.notice_id}: the notice is not prepared")
    with private_tempdir("sf-notice-") as tmp:
        local = tmp / notice.file_name
        with notice.ciphertext.open("rb") as src, local.open("wb") as dst:
            dst.write(src.read())
        if sha256_of(local) != manifest["ciphertext_sha256"]:
            raise RuntimeError(f"{agreement.id} {notice.notice_id}: the kept notice does not match its hash")
        outcome = deliver(
            endpoint,
            local,
            agreement.sftp.remote_inbox,
            notice.file_name,
            sha256=manifest["ciphertext_sha256"],
        )
    receipt = {
        "status": outcome.status,
        "remote_path": outcome.remote_path,
        "bytes": outcome.size,
        "sha256": outcome.sha256,
        "delivered_at": datetime.now(UTC).isoformat(),
    }
    write_bytes_atomic(notice.receipt_path, json.dumps(receipt, indent=2, sort_keys=True).encode())
    return receipt


def notice_entry(
    agreement: Agreement,
    notice: Notice,
    manifest: dict[str, Any],
    receipt: dict[str, Any],
    *,
    request_id: str,
    run: Run,
) -> NewEntry:
    """The ``disclosure`` entry of one notice: what left (field names, counts, hashes), never a value."""
    return NewEntry.for_agreement(
        agreement,
        kind="disclosure",
        occurred_at=datetime.fromisoformat(receipt["delivered_at"]),
        fields=tuple(manifest["fields"]),
        row_count=int(manifest["row_count"]),
        plaintext_sha256=manifest["plaintext_sha256"],
        ciphertext_sha256=manifest["ciphertext_sha256"],
        file_name=manifest["file_name"],
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=run.task_id,
        triggered_by=run.triggered_by,
        details={
            "notice": notice.kind,
            "notice_id": notice.notice_id,
            "request_id": request_id,
            "bytes": int(receipt["bytes"]),
        },
        idempotency_key=idempotency_key("disclosure", agreement.id, notice.notice_id),
    )


def prepare_notices(
    store: UPath,
    kind: NoticeKind,
    request_id: str,
    due: list[tuple[Agreement, list[str], dict[str, object]]],
    person_id: str,
    *,
    openpgp: OpenPgp,
) -> list[str]:
    """Write and encrypt one notice per partner in ``due``; returns their agreement ids. Idempotent.

    This half needs the council's key and no partner secret, so it runs controller-side; the delivery
    (:func:`deliver_prepared_notice`) runs where the partner's SFTP connection is (docs/ARCHITECTURE.md,
    "Credentials per partner")."""
    for agreement, refs, corrected in due:
        notice = Notice(store, agreement.id, notice_id_for(kind, agreement.id, request_id), kind)
        prepare_notice(
            notice,
            agreement,
            notice_table(kind, refs, corrected),
            person_id,
            council_fingerprint=openpgp.council_fingerprint,
            passphrase=openpgp.passphrase,
            gnupg_home=openpgp.gnupg_home,
        )
    return [agreement.id for agreement, _, _ in due]


def deliver_prepared_notice(
    store: UPath,
    kind: NoticeKind,
    request_id: str,
    agreement: Agreement,
    endpoint_for: Callable[[Agreement], SftpEndpoint],
    *,
    append: Callable[[NewEntry], int],
    run: Run,
) -> dict[str, Any] | None:
    """Deliver and record the notice prepared for ``agreement``, exactly once; None when the request owes
    this partner none (it received nothing about the person). ``append`` writes a ledger entry and returns
    its seq; ``endpoint_for`` is only called when a notice is due."""
    notice = Notice(store, agreement.id, notice_id_for(kind, agreement.id, request_id), kind)
    manifest = notice.manifest()
    if manifest is None:
        return None
    receipt = deliver_notice(notice, agreement, endpoint_for(agreement))
    entry = notice_entry(agreement, notice, manifest, receipt, request_id=request_id, run=run)
    return {"notice_id": notice.notice_id, "rows": manifest["row_count"], "ledger_seq": append(entry)}


def send_notices(
    store: UPath,
    kind: NoticeKind,
    request_id: str,
    due: list[tuple[Agreement, list[str], dict[str, object]]],
    person_id: str,
    *,
    openpgp: OpenPgp,
    endpoint_for: Callable[[Agreement], SftpEndpoint],
    append: Callable[[NewEntry], int],
    run: Run,
) -> dict[str, Any]:
    """Prepare, deliver and record one notice per partner in ``due``, in one process that holds every
    partner's connection (the command line); idempotent per request and partner."""
    prepare_notices(store, kind, request_id, due, person_id, openpgp=openpgp)
    return {
        agreement.id: deliver_prepared_notice(
            store, kind, request_id, agreement, endpoint_for, append=append, run=run
        )
        for agreement, _, _ in due
    }
