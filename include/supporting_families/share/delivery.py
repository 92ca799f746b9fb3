"""One share under one data agreement: package, encrypt, deliver — each step idempotent per delivery.

A delivery is identified by ``delivery_id`` (derived from the DAG run, so a retry of the same run finds
the same files). Its folder in the store holds everything the council keeps about it:

    deliveries/<agreement>/<delivery_id>/manifest.json      counts and hashes (no personal data)
    deliveries/<agreement>/<delivery_id>/references.parquet.sealed  person_id/family_id -> references sent
    deliveries/<agreement>/<delivery_id>/<name>.csv.gpg     the encrypted file, until delivered
    deliveries/<agreement>/<delivery_id>/<name>.csv.gpg.sealed  the archive: the file exactly as delivered
    deliveries/<agreement>/<delivery_id>/receipt.json       where and when it was delivered
    deliveries/<agreement>/<delivery_id>/sent.parquet.sealed  what was sent, readable by the council only
    staging/<agreement>/<delivery_id>/<name>.csv            plaintext, deleted once encrypted

The partner's file is encrypted to the partner alone (one OpenPGP recipient), so the council keeps its own
copy of exactly what was sent: the agreed fields with the person id, sealed under the data key of its
retention period (:mod:`supporting_families.store.sealed`), never as a second OpenPGP recipient. Subject
access reads it; shredding the period's key ends it. The reference list and, once delivered, the archive of
the partner's file are sealed under the same period's key, so that shredding it leaves nothing from which a
returned reference could be resolved or the file read again, even from a copy that deletion missed (object
versions, object-lock archives, backups).

The per-delivery reference list is what later answers a subject access request ("which partner received
which of my fields, when") and a rectification ("who received the old value") without putting personal
data in the ledger (docs/ARCHITECTURE.md, the rights this round builds on).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.identify import assessment_status, latest_identification
from supporting_families.registers.requests import HEX_AS_LETTERS
from supporting_families.registers.restrictions import read_restrictions
from supporting_families.share.cohort import CohortInputs, register_rows, select_cohort
from supporting_families.share.package import (
    Manifest,
    minimise,
    neutralise_formulas,
    new_manifest,
    to_csv_text_columns,
    write_partner_csv,
)
from supporting_families.share.pseudonymise import PseudonymKey, references
from supporting_families.store.io import (
    atomic_writer,
    copy_into,
    delete_file,
    is_local,
    local_path,
    private_tempdir,
    read_parquet,
    sha256_of,
    write_bytes_atomic,
)
from supporting_families.store.keystore import KeyStore, period_of
from supporting_families.store.layout import REFERENCES_FILE, SEALED_SUFFIX, identification_dir, relative
from supporting_families.store.sealed import (
    open_bytes,
    read_sealed_table,
    seal_bytes,
    sealed_period,
    write_sealed_table,
)
from supporting_families.transport.openpgp import encrypt_and_sign
from supporting_families.transport.sftp import SftpEndpoint, deliver

log = logging.getLogger(__name__)


class ShareError(RuntimeError):
    """A share step cannot go on; the message names the agreement, delivery and rule, never a value."""


def delivery_id_for(agreement_id: str, run_id: str) -> str:
    """A stable id for a run's delivery: ``d`` and 16 letters from a hash of agreement and run id.

    The same run (and every retry of it) gets the same id, so every step finds its own earlier work.
    Letters only (hex digits 0-f spelled a-p): the id goes into the ledger, whose personal-data guard
    refuses dates and long runs of digits, so the id must never look like either.
    """
    digest = hashlib.sha256(f"{agreement_id}\n{run_id}".encode()).hexdigest()[:16]
    return "d" + digest.translate(HEX_AS_LETTERS)


#: What :func:`delivery_id_for` produces; partners' return names carry it (docs/STORE.md).
DELIVERY_ID_PATTERN = r"d[a-p]{16}"


#: The controller-side copy's file name in a delivery's folder.
SENT_COPY = "sent.parquet.sealed"


@dataclass(frozen=True)
class Delivery:
    """Where one delivery's files live in the store."""

    store: UPath
    agreement_id: str
    delivery_id: str

    @property
    def name(self) -> str:
        """The partner-facing file name, without extension: ``sf-<agreement>-<delivery id>``."""
        return f"sf-{self.agreement_id}-{self.delivery_id}"

    @property
    def folder(self) -> UPath:
        return self.store / "deliveries" / self.agreement_id / self.delivery_id

    @property
    def staging_csv(self) -> UPath:
        return self.store / "staging" / self.agreement_id / self.delivery_id / f"{self.name}.csv"

    @property
    def ciphertext(self) -> UPath:
        return self.folder / f"{self.name}.csv.gpg"

    @property
    def manifest_path(self) -> UPath:
        return self.folder / "manifest.json"

    @property
    def references_path(self) -> UPath:
        return self.folder / REFERENCES_FILE

    @property
    def references_context(self) -> str:
        return relative(self.store, self.references_path)

    @property
    def archive_path(self) -> UPath:
        """The delivered file's archive, sealed under the period's data key."""
        return self.folder / f"{self.name}.csv.gpg{SEALED_SUFFIX}"

    @property
    def archive_context(self) -> str:
        return relative(self.store, self.archive_path)

    def period(self) -> str:
        """The retention period (data key) the delivery's copies are sealed under: its sent copy's."""
        with self.sent_copy_path.open("rb") as fh:
            return sealed_period(fh.read(64))

    def references(self, keys: KeyStore, columns: list[str] | None = None) -> pa.Table:
        """The reference list; :class:`KeyShredded` once the period's key is gone."""
        return read_sealed_table(self.references_path, keys, self.references_context, columns)

    def archived_ciphertext(self, keys: KeyStore) -> bytes:
        """The partner's file exactly as delivered (OpenPGP bytes), from the archive or, before delivery
        completed, the unsealed file."""
        if self.archive_path.exists():
            return open_bytes(self.archive_path.read_bytes(), keys, self.archive_context)
        return self.ciphertext.read_bytes()

    @property
    def sent_copy_path(self) -> UPath:
        return self.folder / SENT_COPY

    @property
    def sent_copy_context(self) -> str:
        """The sealed copy's associated data: its place in the store."""
        return f"deliveries/{self.agreement_id}/{self.delivery_id}/{SENT_COPY}"

    @property
    def receipt_path(self) -> UPath:
        return self.folder / "receipt.json"

    def manifest(self) -> Manifest:
        return Manifest.from_json(self.manifest_path.read_text())

    def receipt(self) -> dict[str, Any] | None:
        if not self.receipt_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.receipt_path.read_text())
        return data


@contextlib.contextmanager
def local_file(path: UPath) -> Iterator[Path]:
    """A local path for ``path``: itself on ``file://``, else a downloaded temporary copy (gpg and SFTP
    need real files)."""
    if is_local(path):
        yield local_path(path)
        return
    with private_tempdir() as tmp:
        local = tmp / path.name
        with path.open("rb") as src, atomic_writer(local) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        yield local


def upload(local: Path, target: UPath) -> None:
    """Copy a local file into the store, whole (:func:`supporting_families.store.io.copy_into`)."""
    copy_into(local, target)


def share_view(
    cohort: pa.Table, persons: pa.Table, key: PseudonymKey, agreement: Agreement
) -> tuple[pa.Table, pa.Table]:
    """The agreed fields for the cohort, with references, and the controller-side reference list.

    ``cohort`` has ``person_id`` (and ``programme_status`` for the ONS cohort); ``persons`` is the register.
    Returns ``(view, refs)``: ``view`` has the internal ids plus every agreed field (minimisation picks the
    agreed ones next); ``refs`` is ``person_id, family_id, person_ref, family_ref`` for the delivery folder.
    """
    # Only the columns the share uses are gathered: the ids, and the agreed fields the register holds.
    needed = ["person_id", "family_id", *(f for f in agreement.fields if f in persons.column_names)]
    person_ref = references(cohort["person_id"], key, "person")
    # File order carries no information about the register's order: rows go in reference order. The order
    # is found first, so the register's rows are gathered once, already in it.
    order = reference_order(person_ref)
    view, missing = register_rows(cohort.take(order), persons, needed)
    if missing:
        raise ShareError(f"{agreement.id}: {missing} cohort persons not in the register")
    view = view.append_column("person_ref", person_ref.take(order))
    view = view.append_column("family_ref", references(view["family_id"], key, "family"))
    refs = view.select(["person_id", "family_id", "person_ref", "family_ref"])
    return view, refs


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def reference_order(refs: pa.Array) -> pa.Array:
    """The positions that sort ``refs`` (``pc.sort_indices``' result), found faster where it can be.

    References are ``v<version>-`` and lower-case hex of one length: their order is that of the first 16
    hex digits read as a 64-bit number, which numpy sorts in a fifth of the time a string sort takes. If two
    references share those digits (about one chance in 10^7 for a million) or the column is not of that
    shape, the string sort decides, so the result is always exactly the string order.
    """
    n = len(refs)
    if n < 2 or refs.null_count:
        return pc.sort_indices(refs)
    offsets = np.frombuffer(refs.buffers()[1], dtype=np.int32)[refs.offset : refs.offset + n + 1]
    width = int(offsets[1] - offsets[0])
    first = refs[0].as_py()
    start = first.index("-") + 1 if width and "-" in first else 0
    if not width or width - start < 16 or not np.all(np.diff(offsets) == width):
        return pc.sort_indices(refs)
    data = np.frombuffer(refs.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(n, width)
    digits = _HEX_VALUE[data[:, start : start + 16]]
    if np.any(digits == 255):
        return pc.sort_indices(refs)
    packed = np.ascontiguousarray((digits[:, 0::2] << np.uint8(4)) | digits[:, 1::2])
    keys = packed.view(">u8").ravel()  # eight bytes, most significant first
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    if np.any(ranked[1:] == ranked[:-1]):
        return pc.sort_indices(refs)
    return pa.array(order)


def package_delivery(
    delivery: Delivery,
    agreement: Agreement,
    view: pa.Table,
    refs: pa.Table,
    run_id: str,
    extra: dict[str, int] | None = None,
    *,
    keys: KeyStore,
) -> Manifest:
    """Minimise and write the partner's CSV to staging, the sealed copy, the reference list and the manifest.

    Idempotent: a delivery that already has a manifest is left as it is (its file may already be with the
    partner; re-packaging could only produce a second, different file for the same run).
    """
    if delivery.manifest_path.exists():
        log.info("%s %s: already packaged", agreement.id, delivery.delivery_id)
        return delivery.manifest()
    minimised = minimise(view, agreement)
    with private_tempdir("sf-package-") as tmp:
        local = tmp / f"{delivery.name}.csv"
        rows = write_partner_csv(minimised, agreement, local)
        plaintext_sha256 = sha256_of(local)
        upload(local, delivery.staging_csv)
    period = period_of(datetime.now(UTC))
    write_sealed_table(refs, delivery.references_path, keys, period, delivery.references_context)
    # What left, value for value, with whom it is about: the agreed fields as minimised, and the person id.
    # The same transformation as the CSV writer's, so the copy holds the values exactly as the file does.
    sent = neutralise_formulas(to_csv_text_columns(minimised)).append_column("person_id", view["person_id"])
    write_sealed_table(sent, delivery.sent_copy_path, keys, period, delivery.sent_copy_context)
    manifest = new_manifest(agreement, run_id, rows, f"{delivery.name}.csv", plaintext_sha256)
    # The manifest is written last: its presence means the package is complete.
    write_bytes_atomic(delivery.manifest_path, manifest.to_json().encode())
    log.info("%s %s: packaged %d rows (%s)", agreement.id, delivery.delivery_id, rows, extra or {})
    return manifest


def encrypt_delivery(
    delivery: Delivery,
    agreement: Agreement,
    *,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> Manifest:
    """Encrypt the staged CSV to the partner's pinned key, signed by the council; drop the plaintext.

    Idempotent: once the manifest records a ciphertext whose file (or its archive) is present, nothing runs.
    The staged plaintext goes whatever happens: on success it is replaced by the ciphertext; on failure the
    package is undone (plaintext and manifest deleted), so a retry packages again from the register rather
    than leaving personal data in staging for as long as the failure lasts (UK GDPR Article 5(1)(e), (f)).
    """
    manifest = delivery.manifest()
    if manifest.ciphertext_sha256 and delivery.archive_path.exists():
        return manifest
    if manifest.ciphertext_sha256 and delivery.ciphertext.exists():
        if sha256_of(delivery.ciphertext) != manifest.ciphertext_sha256:
            raise ShareError(
                f"{agreement.id} {delivery.delivery_id}: archived ciphertext does not match manifest"
            )
        return manifest
    if not delivery.staging_csv.exists():
        raise ShareError(f"{agreement.id} {delivery.delivery_id}: no staged plaintext to encrypt")
    try:
        return _encrypt(
            delivery,
            agreement,
            manifest,
            council_fingerprint=council_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
        )
    except BaseException:
        unpackage(delivery)
        raise


def unpackage(delivery: Delivery) -> None:
    """Undo a package that cannot be encrypted: the staged plaintext and the manifest (whose presence means
    "packaged") go; the next attempt packages again. Nothing has left, so nothing else depends on it."""
    delete_file(delivery.staging_csv, missing_ok=True)
    delete_file(delivery.manifest_path, missing_ok=True)
    log.warning(
        "%s %s: encryption failed; staged plaintext deleted", delivery.agreement_id, delivery.delivery_id
    )


def _encrypt(
    delivery: Delivery,
    agreement: Agreement,
    manifest: Manifest,
    *,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> Manifest:
    with local_file(delivery.staging_csv) as plain, tempfile.TemporaryDirectory(prefix="sf-enc-") as tmp:
        out = Path(tmp) / delivery.ciphertext.name
        result = encrypt_and_sign(
            plain,
            out,
            recipient_fingerprint=agreement.openpgp.partner_fingerprint,
            signer_fingerprint=council_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
        )
        if result.plaintext_sha256 != manifest.plaintext_sha256:
            raise ShareError(
                f"{agreement.id} {delivery.delivery_id}: staged plaintext changed since packaging"
            )
        upload(out, delivery.ciphertext)
    manifest = replace(
        manifest, ciphertext_name=delivery.ciphertext.name, ciphertext_sha256=result.ciphertext_sha256
    )
    write_bytes_atomic(delivery.manifest_path, manifest.to_json().encode())
    # Personal data at rest only where needed: the encrypted archive replaces the plaintext.
    delete_file(delivery.staging_csv)
    return manifest


def deliver_delivery(
    delivery: Delivery, agreement: Agreement, endpoint: SftpEndpoint, *, keys: KeyStore
) -> dict[str, Any]:
    """Send the ciphertext to the partner's inbox exactly once, then archive it sealed; returns the receipt.

    Two guards against a second delivery: the receipt in the store (the partner may already have
    collected the file, so the inbox alone cannot tell), and the SFTP layer's own check of the final name.
    """
    existing = delivery.receipt()
    if existing is not None:
        log.info("%s %s: already delivered, nothing sent", agreement.id, delivery.delivery_id)
        archive_delivered(delivery, keys)
        return {**existing, "status": "already_delivered"}
    manifest = delivery.manifest()
    if not manifest.ciphertext_sha256 or not manifest.ciphertext_name:
        raise ShareError(f"{agreement.id} {delivery.delivery_id}: not encrypted yet")
    with _ciphertext_file(delivery, keys) as cipher:
        outcome = deliver(
            endpoint,
            cipher,
            agreement.sftp.remote_inbox,
            manifest.ciphertext_name,
            sha256=manifest.ciphertext_sha256,
        )
    receipt = {
        "status": outcome.status,
        "remote_path": outcome.remote_path,
        "bytes": outcome.size,
        "bytes_sent": outcome.bytes_sent,
        "sha256": outcome.sha256,
        "delivered_at": datetime.now(UTC).isoformat(),
        "seconds": round(outcome.seconds, 3),
    }
    write_bytes_atomic(delivery.receipt_path, json.dumps(receipt, indent=2, sort_keys=True).encode())
    archive_delivered(delivery, keys)
    return receipt


@contextlib.contextmanager
def _ciphertext_file(delivery: Delivery, keys: KeyStore) -> Iterator[Path]:
    """The OpenPGP file as a local path: the encrypted file, or (a receipt lost after archiving) the archive
    opened into a private temporary file."""
    if delivery.ciphertext.exists() or not delivery.archive_path.exists():
        with local_file(delivery.ciphertext) as path:
            yield path
        return
    with private_tempdir("sf-archive-") as tmp:
        local = tmp / delivery.ciphertext.name
        write_bytes_atomic(local, delivery.archived_ciphertext(keys))
        yield local


def archive_delivered(delivery: Delivery, keys: KeyStore) -> None:
    """Replace the delivered file by its archive, sealed under the delivery's period key (idempotent).

    The OpenPGP file is encrypted to the partner, so a copy of it is the partner's data for as long as it
    exists; sealing it as well means the period's key ends every copy of it too."""
    if delivery.archive_path.exists() or not delivery.ciphertext.exists():
        delete_file(delivery.ciphertext, missing_ok=True)
        return
    data = delivery.ciphertext.read_bytes()
    write_bytes_atomic(
        delivery.archive_path, seal_bytes(data, keys, delivery.period(), delivery.archive_context)
    )
    delete_file(delivery.ciphertext)


def disclosure_entry(
    agreement: Agreement,
    delivery: Delivery,
    manifest: Manifest,
    receipt: dict[str, Any],
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    triggered_by: str | None,
    counts: dict[str, int] | None = None,
) -> NewEntry:
    """The ledger entry for one disclosure; its idempotency key makes a retried task record it once."""
    return NewEntry.for_agreement(
        agreement,
        kind="disclosure",
        occurred_at=datetime.fromisoformat(receipt["delivered_at"]),
        row_count=manifest.row_count,
        plaintext_sha256=manifest.plaintext_sha256,
        ciphertext_sha256=manifest.ciphertext_sha256,
        file_name=manifest.ciphertext_name,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        triggered_by=triggered_by,
        details={
            "delivery_id": delivery.delivery_id,
            "key_version": manifest.key_version,
            "bytes": int(receipt["bytes"]),
            **(counts or {}),
        },
        idempotency_key=idempotency_key("disclosure", agreement.id, delivery.delivery_id),
    )


def conflict_entry(
    agreement: Agreement,
    delivery: Delivery,
    manifest: Manifest,
    *,
    occurred_at: datetime,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    triggered_by: str | None,
) -> NewEntry:
    """The ledger entry for a delivery that found other bytes under its final name: nothing left. Its
    idempotency key makes every retry of the delivery record it once. The file name is the council's own
    (``sf-<agreement>-<delivery id>.csv.gpg``), never one the partner chose."""
    return NewEntry.for_agreement(
        agreement,
        kind="delivery_conflict",
        occurred_at=occurred_at,
        ciphertext_sha256=manifest.ciphertext_sha256,
        file_name=manifest.ciphertext_name,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        triggered_by=triggered_by,
        details={"delivery_id": delivery.delivery_id, "outcome": "final_name_held_by_other_bytes"},
        idempotency_key=idempotency_key("delivery_conflict", agreement.id, delivery.delivery_id),
    )


def cohort_inputs(store: UPath, share_date: date | None = None) -> CohortInputs:
    """Everything cohort selection reads, from the newest identification and the register.

    ``share_date`` (default: today, UTC) is the day restrictions are checked on."""
    as_of = latest_identification(store)
    if as_of is None:
        raise ShareError("no identification under identification/: run identify_families first")
    folder = identification_dir(store, as_of)
    links = read_parquet(store / "register" / "links.parquet")
    # "Those who have not been included on the programme but may have received other services" (ONS):
    # the children's centres are the internal source of other services.
    services = links.filter(pc.equal(links["source"], "childrens_centres"))["person_id"]
    return CohortInputs(
        persons=read_parquet(store / "register" / "persons.parquet"),
        person_flags=read_parquet(folder / "person_flags.parquet"),
        family_problems=read_parquet(folder / "family_problems.parquet"),
        assessments=assessment_status(store),
        other_services=pc.unique(services),
        restrictions=read_restrictions(store),
        as_of=as_of,
        share_date=share_date or datetime.now(UTC).date(),
    )


def prepare_delivery(
    delivery: Delivery, agreement: Agreement, key: PseudonymKey, run_id: str, *, keys: KeyStore
) -> dict[str, Any]:
    """Select, restrict, pseudonymise, minimise and package one delivery; returns counts for XCom."""
    if delivery.manifest_path.exists():
        manifest = delivery.manifest()
        return {"delivery_id": delivery.delivery_id, "rows": manifest.row_count, "already_packaged": 1}
    inputs = cohort_inputs(delivery.store)
    cohort = select_cohort(agreement, inputs)
    view, refs = share_view(cohort.table, inputs.persons, key, agreement)
    counts = {
        "selected": cohort.selected,
        "excluded_by_restriction": cohort.excluded_by_restriction,
        "excluded_by_objection": cohort.excluded_by_objection,
    }
    manifest = package_delivery(delivery, agreement, view, refs, run_id, counts, keys=keys)
    return {"delivery_id": delivery.delivery_id, "rows": manifest.row_count, **counts}
