"""Collect an outside organisation's extract from its SFTP outbox, verified, into ``landing/``.

A voluntary-sector agency (the privacy notice lists "some partner agencies in the voluntary sector" among
the organisations the data comes from) sends identified records, not answers about pseudonyms: so its file
is an extract, and after this step it is ingested and linked like any department's (``ingest_<source>``).
It comes over the same transport as partners' returns, with the same checks:

1. the safe fetch (:func:`supporting_families.transport.sftp.fetch`: host key pinned, names checked,
   symbolic links never followed, a size cap); refused entries are set aside in the outbox and recorded;
2. only a name of the source's exact shape (``<source>_<extract date>.csv.gpg``) is taken in, so a name the
   sender chose never reaches the store, the logs or the ledger;
3. the OpenPGP signature of the pinned sender and the integrity check (MDC) are required
   (:func:`supporting_families.transport.openpgp.decrypt_and_verify`); a file that fails is quarantined
   whole, encrypted as it came, under ``quarantine/<source>/<name>/`` with ``reason.json`` (the rule, no
   value), recorded as ``quarantine``, and nothing of it lands;
4. the plaintext is written to ``landing/`` whole or not at all (atomic rename), with a receipt
   (``ingest_reports/<source>/<stem>.received.json``: sizes and hashes) and one ``extract_received`` ledger
   entry; then the file is removed from the outbox, so it is never taken twice.

Every step is idempotent per (source, name, SHA-256 of the file as received): a retry after a crash lands
nothing twice and records once. Logs, exceptions and the ledger carry counts, rules and hashes only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from upath import UPath

from supporting_families.audit import Ledger, NewEntry, idempotency_key
from supporting_families.config.sources import SourceSpec
from supporting_families.receive.records import RunInfo
from supporting_families.receive.remote import Collected, name_sha256, remove_collected, set_aside
from supporting_families.store import layout
from supporting_families.store.io import private_tempdir, sha256_of, write_bytes_atomic
from supporting_families.transport.openpgp import (
    DecryptionError,
    IntegrityCheckFailed,
    NotIntegrityProtected,
    PlaintextTooLarge,
    SignatureError,
    decrypt_and_verify,
)
from supporting_families.transport.sftp import FetchedFile, SftpEndpoint, fetch

log = logging.getLogger(__name__)

MIB: Final = 1 << 20

Outcome = Literal["landed", "already_landed", "quarantined"]

#: Every rule a refused or quarantined inbound file can name.
INBOUND_RULES: Final[dict[str, str]] = {
    "file_name": "the name is not the source's <source>_<extract date>.csv.gpg",
    "signature": "the signature is missing, bad, or not by the sender's pinned key",
    "integrity": "the ciphertext is not integrity protected or was modified",
    "decryption": "the file is not a message encrypted to the council's key",
    "too_large": "the file is larger than the source's inbound.max_size_mib",
    "unsafe_name": "the remote name is unsafe (path separator, '..', control character, ...)",
    "not_regular_file": "the remote entry is not a regular file (e.g. a symbolic link)",
}


@dataclass(frozen=True)
class CollectSummary:
    """What one collection took in and refused: landing names (the source's own shape) and counts."""

    landed: tuple[str, ...] = ()
    already_landed: tuple[str, ...] = ()
    quarantined: Mapping[str, int] = field(default_factory=dict)
    refused: Mapping[str, int] = field(default_factory=dict)
    changing: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "landed": len(self.landed),
            "already_landed": len(self.already_landed),
            "quarantined": sum(self.quarantined.values()),
            "refused": sum(self.refused.values()),
            "changing": self.changing,
        }

    def problems(self) -> list[str]:
        """One line per rule that refused or quarantined something (rules and counts only)."""
        found = {**self.quarantined}
        for rule, n in self.refused.items():
            found[rule] = found.get(rule, 0) + n
        return [f"{n} file(s) {rule}: {INBOUND_RULES.get(rule, rule)}" for rule, n in sorted(found.items())]


def receipt_file(store: UPath, spec: SourceSpec, landing_name: str) -> UPath:
    """The receipt of one collected file: counts and hashes, beside the ingest's report."""
    stem = landing_name.rsplit(".", 1)[0]
    return layout.ingest_report_file(store, spec.name, f"{stem}.received")


def _inbound(spec: SourceSpec) -> Any:
    if spec.inbound is None:
        raise ValueError(f"{spec.name} is not an inbound source (no inbound: in sources.yaml)")
    return spec.inbound


def _entry(spec: SourceSpec, kind: Any, run: RunInfo | None, **columns: Any) -> NewEntry:
    return NewEntry(
        kind=kind, partner=_inbound(spec).agency.code, **{**(run.columns() if run else {}), **columns}
    )


def collect_extracts(
    store: UPath,
    spec: SourceSpec,
    endpoint: SftpEndpoint,
    *,
    gnupg_home: Path,
    passphrase: str | None,
    signer_fingerprint: str,
    ledger: Ledger,
    run: RunInfo | None = None,
    attempts: int = 4,
    backoff: float = 2.0,
) -> CollectSummary:
    """Fetch, verify and land every file of ``spec``'s shape in its sender's outbox (module docstring)."""
    inbound = _inbound(spec)
    outbox = inbound.sftp.remote_outbox
    cap = inbound.max_size_mib * MIB
    landed: list[str] = []
    already: list[str] = []
    quarantined: dict[str, int] = {}
    refused: dict[str, int] = {}
    done: list[Collected] = []
    with private_tempdir("sf-inbound-") as tmp:
        # Ciphertext is the plaintext plus a few hundred bytes of OpenPGP framing (no compression is used).
        result = fetch(
            endpoint,
            outbox,
            spec.remote_pattern,
            tmp,
            max_bytes=cap + MIB,
            attempts=attempts,
            backoff=backoff,
        )
        for file in result.fetched:
            outcome = _take_in(
                store,
                spec,
                file,
                tmp,
                gnupg_home=gnupg_home,
                passphrase=passphrase,
                signer=signer_fingerprint,
                cap=cap,
                ledger=ledger,
                run=run,
            )
            state, value = outcome
            if state == "quarantined":
                quarantined[value] = quarantined.get(value, 0) + 1
            else:
                (already if state == "already_landed" else landed).append(value)
            done.append(Collected(file.name, file.size, file.mtime))
    for rejected in result.rejected:
        if rejected.reason == "changed_while_reading":
            continue
        if rejected.reason == "local_conflict":  # a fresh temporary folder cannot hold another file
            raise RuntimeError(f"{spec.name}: a local conflict in a fresh fetch folder")
        set_aside_as = set_aside(endpoint, outbox, rejected.name)
        _record_quarantine(spec, rejected.name, rejected.reason, ledger=ledger, run=run, size=rejected.size)
        log.error(
            "%s: refused an entry (name sha256 %s): %s%s",
            spec.name,
            name_sha256(rejected.name),
            rejected.reason,
            ", set aside" if set_aside_as else ", left in place",
        )
        refused[rejected.reason] = refused.get(rejected.reason, 0) + 1
    changing = sum(1 for r in result.rejected if r.reason == "changed_while_reading")
    if done:
        # Only after the store holds each file (landed, or quarantined whole): nothing is lost.
        remove_collected(endpoint, outbox, done)
    summary = CollectSummary(tuple(landed), tuple(already), quarantined, refused, changing)
    log.info("%s: collected %s", spec.name, summary.counts())
    return summary


def _take_in(
    store: UPath,
    spec: SourceSpec,
    file: FetchedFile,
    tmp: Path,
    *,
    gnupg_home: Path,
    passphrase: str | None,
    signer: str,
    cap: int,
    ledger: Ledger,
    run: RunInfo | None,
) -> tuple[Outcome, str]:
    """Land one fetched file: ``("landed" | "already_landed", landing name)`` or ``("quarantined", rule)``."""
    name = spec.landing_name(file.name)
    if name is None:
        return "quarantined", _quarantine(store, spec, file, "file_name", ledger=ledger, run=run)
    receipt = receipt_file(store, spec, name)
    if receipt.exists():
        known = json.loads(receipt.read_text())
        if known.get("ciphertext_sha256") == file.sha256:
            log.info("%s: name sha256 %s was landed before", spec.name, name_sha256(file.name))
            _record_received(spec, name, known, file, ledger=ledger, run=run)  # once, by its key
            return "already_landed", name
    plain = tmp / f"{file.sha256}.csv"
    try:
        result = decrypt_and_verify(
            file.local_path,
            plain,
            expected_signer_fingerprint=signer,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
            max_plaintext_bytes=cap,
        )
    except SignatureError:
        return "quarantined", _quarantine(store, spec, file, "signature", ledger=ledger, run=run)
    except (IntegrityCheckFailed, NotIntegrityProtected):
        return "quarantined", _quarantine(store, spec, file, "integrity", ledger=ledger, run=run)
    except PlaintextTooLarge:
        return "quarantined", _quarantine(store, spec, file, "too_large", ledger=ledger, run=run)
    except DecryptionError:
        return "quarantined", _quarantine(store, spec, file, "decryption", ledger=ledger, run=run)
    target = layout.landing_dir(store, spec.file_glob) / name
    write_bytes_atomic(target, plain.read_bytes())
    if sha256_of(target) != result.plaintext_sha256:
        raise RuntimeError(f"{spec.name}: the landed copy does not match what was decrypted")
    details = {
        "ciphertext_sha256": file.sha256,
        "plaintext_sha256": result.plaintext_sha256,
        "ciphertext_bytes": file.size,
        "plaintext_bytes": result.plaintext_bytes,
        "signer_fingerprint": result.signer_fingerprint,
        "arrived_at": file.mtime.isoformat(),
        "landed_at": datetime.now(UTC).isoformat(),
    }
    # The receipt last: with it, the file counts as landed (a crash before it lands the file again, whole).
    write_bytes_atomic(receipt, json.dumps(details, indent=2, sort_keys=True).encode() + b"\n")
    _record_received(spec, name, details, file, ledger=ledger, run=run)
    log.info(
        "%s: landed name sha256 %s (%d bytes, plaintext sha256 %s), signed by %s",
        spec.name,
        name_sha256(file.name),
        result.plaintext_bytes,
        result.plaintext_sha256,
        result.signer_fingerprint,
    )
    return "landed", name


def _record_received(
    spec: SourceSpec,
    name: str,
    details: Mapping[str, Any],
    file: FetchedFile,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> None:
    # The name carries the extract date, and the ledger's guard refuses any date (it could be a date of
    # birth): the ledger names the file by its hash; the receipt in the store has the name.
    ledger.append(
        _entry(
            spec,
            "extract_received",
            run,
            occurred_at=file.mtime,
            file_name=name_sha256(name),
            ciphertext_sha256=str(details["ciphertext_sha256"]),
            plaintext_sha256=str(details["plaintext_sha256"]),
            details={"source": spec.name, "bytes": int(details["plaintext_bytes"])},
            idempotency_key=idempotency_key(
                "extract_received", spec.name, name, str(details["ciphertext_sha256"])
            ),
        )
    )


def _quarantine(
    store: UPath, spec: SourceSpec, file: FetchedFile, rule: str, *, ledger: Ledger, run: RunInfo | None
) -> str:
    """Keep the file whole, encrypted as it came, in ``quarantine/<source>/``; record it; return the rule."""
    digest = name_sha256(file.name)
    shaped = spec.landing_name(file.name)
    folder = layout.ingest_quarantine_dir(
        store, spec.name, f"{shaped}.gpg" if shaped else f"refused-{digest[:16]}"
    )
    write_bytes_atomic(folder / "original.gpg", file.local_path.read_bytes())
    reason = {
        "source": spec.name,
        "rule": rule,
        "rule_means": INBOUND_RULES[rule],
        "name_sha256": digest,
        "ciphertext_sha256": file.sha256,
        "size_bytes": file.size,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    write_bytes_atomic(folder / "reason.json", json.dumps(reason, indent=2, sort_keys=True).encode() + b"\n")
    _record_quarantine(spec, file.name, rule, ledger=ledger, run=run, size=file.size, sha256=file.sha256)
    log.error("%s: quarantined name sha256 %s: %s", spec.name, digest, rule)
    return rule


def _record_quarantine(
    spec: SourceSpec,
    name: str,
    rule: str,
    *,
    ledger: Ledger,
    run: RunInfo | None,
    size: int | None,
    sha256: str | None = None,
) -> None:
    digest = name_sha256(name)
    ledger.append(
        _entry(
            spec,
            "quarantine",
            run,
            occurred_at=datetime.now(UTC),
            file_name=digest,
            ciphertext_sha256=sha256,
            details={"source": spec.name, "rule": rule},
            idempotency_key=idempotency_key(
                "quarantine", spec.name, digest, sha256 or hashlib.sha256(str(size).encode()).hexdigest()
            ),
        )
    )
