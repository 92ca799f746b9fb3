"""Play one partner for one data agreement: collect new deliveries, decrypt and verify, answer, publish.

The simulator is the partner, so it works on its own SFTP server's folders directly (``inbox``, ``outbox``)
and keeps what it collected in a private folder the council cannot see (``collected_dir``).

Per delivery ``sf-<agreement id>-<delivery id>.csv.gpg`` in the inbox:

1. Collect: move it out of the inbox into ``collected_dir`` (a rename, so the council's listing shows it
   gone at once: the receive DAG records that as the partner's collection). Only regular files with
   exactly that name shape are taken; the council's in-progress uploads are dot-prefixed and never match.
2. Check it is encrypted to this partner's own key (another partner's delivery must not be readable here,
   even though the demo keeps every partner's key in one keyring), then decrypt it and verify the council's
   signature against the pinned council fingerprint (``decrypt_and_verify``). The decrypted CSV lives in a
   private temporary folder and is deleted once the answer is written.
3. Answer as the partner (``answers``), apply the requested faults (``injection``), sign with the partner's
   key, encrypt to the council's key, and publish the return in the outbox as
   ``<returns.file_pattern with * = delivery id>``: written under a dot-prefixed temporary name, then
   hard-linked to the final name (which never replaces an existing file) so the council's sensor never
   sees a partial file.
4. Record it as answered: ``<delivery file>.answered.json`` beside the collected file (counts, names and
   faults; no content). A delivery is answered once: a second run finds the marker, and a run that died
   after publishing finds the return in the outbox and only writes the marker.

A delivery that fails decryption or verification, is not encrypted to the partner, or does not have the
agreement's columns is refused (``<delivery file>.refused.json`` with the error's type and message), as a
partner would refuse it; it is not answered. Configuration faults (a missing key, no partner truth) raise.

Only counts, file names of deliveries and fingerprints are logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from upath import UPath

from sf_demo.partner_simulator.answers import (
    DWP,
    DWP_TRUTH,
    ONS,
    PARTNERS,
    POLICE,
    POLICE_TRUTH,
    Answer,
    DeliveryRefused,
    SimulatorError,
    UnsupportedPartner,
    dwp_answer,
    ons_receipt,
    police_answer,
    read_delivery,
    render_csv,
)
from sf_demo.partner_simulator.faults import Fault
from sf_demo.partner_simulator.injection import apply_row_faults, malform_csv, tamper
from sf_demo.partner_simulator.keys import Signer, other_signer, outsider_signer, own_key_ids
from supporting_families.config import Agreement
from supporting_families.store.io import fsync_dir, read_parquet, write_bytes_atomic
from supporting_families.transport.openpgp import (
    DecryptionError,
    DecryptionResult,
    SignatureError,
    decrypt_and_verify,
    encrypt_and_sign,
    normalise_fingerprint,
    recipient_key_ids,
)

log = logging.getLogger(__name__)

__all__ = ["SimulationReport", "hostile_names", "return_file_name", "simulate"]

ANSWERED_SUFFIX = ".answered.json"
REFUSED_SUFFIX = ".refused.json"
#: Where the ``hostile_file_name`` fault's symbolic link points: outside the outbox (and the SFTP root).
HOSTILE_LINK_TARGET = "/etc/passwd"
_DELIVERY_ID = r"d[a-p]{16}"  # the council's delivery ids (supporting_families.share.delivery)


@dataclass(frozen=True)
class SimulationReport:
    """What one run did for one agreement: counts only (no reference, no value)."""

    agreement_id: str
    partner: str
    faults: tuple[str, ...]
    #: Moved out of the inbox by this run.
    deliveries_collected: int = 0
    #: Answered by this run (a return published).
    deliveries_answered: int = 0
    #: Found answered already (a return in the outbox from a run that stopped before its marker).
    deliveries_already_answered: int = 0
    #: Refused: not decryptable or verifiable, not for this partner, or not the agreed columns.
    deliveries_refused: int = 0
    #: Inbox entries left alone: other names, symbolic links, a collected name with different bytes.
    inbox_ignored: int = 0
    rows_received: int = 0
    rows_returned: int = 0
    references_matched: int = 0
    references_rejected: int = 0
    references_absent: int = 0
    rows_dropped: int = 0
    rows_duplicated: int = 0
    rows_unexpected: int = 0
    #: Directory entries written to the outbox (more than one per return under ``hostile_file_name``).
    outbox_entries_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "faults": list(self.faults)}


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def return_file_name(agreement: Agreement, delivery_id: str) -> str:
    """The return's name: the agreement's ``returns.file_pattern`` with its ``*`` replaced by the delivery id
    (docs/STORE.md: a return names the delivery it answers)."""
    pattern = agreement.returns.file_pattern
    if pattern.count("*") != 1 or any(ch in pattern for ch in "?[]"):
        raise SimulatorError(
            f"{agreement.id}: returns.file_pattern must hold exactly one '*' (for the delivery id) and no "
            "other wildcard for the simulator to name a return"
        )
    if not re.fullmatch(_DELIVERY_ID, delivery_id):
        raise SimulatorError(f"{agreement.id}: {delivery_id!r} is not a delivery id")
    return pattern.replace("*", delivery_id)


def hostile_names(agreement: Agreement, delivery_id: str) -> tuple[str, str, str]:
    """The names the ``hostile_file_name`` fault writes the real return under: with ``..`` and with an
    escape character (both matching the agreement's pattern), and hidden (leading dot)."""
    before, after = agreement.returns.file_pattern.split("*")
    return (
        f"{before}{delivery_id}.{after}",  # "...<id>..csv.gpg": a parent reference inside the name
        f"{before}{delivery_id}\x1b[2J{after}",  # ESC [2J clears a terminal that prints the name
        f".{before}{delivery_id}{after}",
    )


def _delivery_pattern(agreement: Agreement) -> re.Pattern[str]:
    return re.compile(rf"sf-{re.escape(agreement.id)}-({_DELIVERY_ID})\.csv\.gpg")


# -- collection ---------------------------------------------------------------------------------------------


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while chunk := fa.read(1 << 20):
            if chunk != fb.read(len(chunk)):
                return False
    return True


def _move(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (which must not exist), keeping its mtime (the delivery time)."""
    try:
        os.link(source, target)
    except OSError:
        # Another file system: copy (with times) beside the target, then publish it under its name.
        partial = target.with_name(f".{target.name}.{secrets.token_hex(8)}.part")
        shutil.copy2(source, partial)
        try:
            os.link(partial, target)
        finally:
            partial.unlink()
    source.unlink()


def collect(agreement: Agreement, inbox: Path, collected_dir: Path, tally: _Tally) -> None:
    """Move every new delivery for ``agreement`` out of ``inbox`` into ``collected_dir``."""
    pattern = _delivery_pattern(agreement)
    for entry in sorted(os.scandir(inbox), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue  # the council's upload in progress, or someone's hidden file: never ours to take
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            tally.add("inbox_ignored")
            continue
        source, target = Path(entry.path), collected_dir / entry.name
        if target.exists():
            if _same_bytes(source, target):
                source.unlink()  # delivered again after we collected it: one copy is enough
                log.info("%s: %s was collected before; removed the repeat", agreement.id, entry.name)
            else:
                tally.add("inbox_ignored")
                log.warning("%s: %s differs from the copy collected before; left", agreement.id, entry.name)
            continue
        _move(source, target)
        tally.add("deliveries_collected")
        log.info("%s: collected %s", agreement.id, entry.name)


def _pending(agreement: Agreement, collected_dir: Path) -> list[tuple[Path, str]]:
    pattern = _delivery_pattern(agreement)
    found: list[tuple[Path, str]] = []
    for path in sorted(collected_dir.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        done = (path.with_name(path.name + s).exists() for s in (ANSWERED_SUFFIX, REFUSED_SUFFIX))
        if not any(done):
            found.append((path, match.group(1)))
    return found


def _write_marker(path: Path, content: dict[str, Any]) -> None:
    write_bytes_atomic(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode("utf-8"))


# -- publishing ---------------------------------------------------------------------------------------------


def _publish(outbox: Path, name: str, source: Path, mtime: float | None) -> None:
    """Write ``source`` to ``outbox/name`` whole or not at all; an existing name is never replaced."""
    partial = outbox / f".{name}.{secrets.token_hex(8)}.part"
    try:
        with source.open("rb") as src, partial.open("xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        if mtime is not None:
            os.utime(partial, (mtime, mtime))
        try:
            os.link(partial, outbox / name)
        except FileExistsError:
            raise SimulatorError(f"{name!a} already exists in the outbox: never replaced") from None
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(outbox)


# -- one delivery -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    agreement: Agreement
    outbox: Path
    collected_dir: Path
    partner_gnupg_home: Path
    partner_fingerprint: str
    council_fingerprint: str
    own_key_ids: frozenset[str]
    truth: Callable[[str], pa.Table]
    as_of: date
    faults: frozenset[Fault]
    seed: int


def _answer(ctx: _Context, sent: pa.Table, delivery: Path, decrypted: DecryptionResult) -> Answer:
    agreement = ctx.agreement
    code = agreement.partner.code
    if code == DWP:
        return dwp_answer(sent, ctx.truth(DWP_TRUTH), agreement, as_of=ctx.as_of, seed=ctx.seed)
    if code == POLICE:
        return police_answer(sent, ctx.truth(POLICE_TRUTH), agreement, as_of=ctx.as_of)
    if code != ONS and agreement.returns.kind != "receipt":
        raise UnsupportedPartner(f"{agreement.id}: the simulator cannot play {code!r}")
    # A receipt (row count and hash of what arrived) needs no partner's records, so any partner whose
    # agreement asks only for one can be played: the scale benchmark's many partners are such partners.
    receipt = agreement.returns.receipt
    hashed = decrypted.ciphertext_sha256 if receipt and receipt.hash_of == "ciphertext" else None
    return ons_receipt(
        agreement,
        delivery_file=delivery.name,
        rows_received=sent.num_rows,
        sha256=hashed or decrypted.plaintext_sha256,
    )


@contextlib.contextmanager
def _signer(ctx: _Context) -> Iterator[Signer]:
    """The partner's own key, or under ``wrong_signer`` another partner's key or an outsider's."""
    if Fault.WRONG_SIGNER not in ctx.faults:
        yield Signer(ctx.partner_gnupg_home, ctx.partner_fingerprint)
        return
    other = other_signer(ctx.partner_gnupg_home, ctx.partner_fingerprint, ctx.council_fingerprint)
    if other is not None:
        yield other
        return
    with outsider_signer(ctx.partner_gnupg_home, ctx.council_fingerprint) as outsider:
        yield outsider


def _place(ctx: _Context, return_name: str, delivery_id: str, ciphertext: Path, mtime: float | None) -> int:
    """Publish the return (or, under ``hostile_file_name``, its hostile set); returns entries written."""
    if Fault.HOSTILE_FILE_NAME not in ctx.faults:
        _publish(ctx.outbox, return_name, ciphertext, mtime)
        return 1
    names = hostile_names(ctx.agreement, delivery_id)
    for name in names:
        _publish(ctx.outbox, name, ciphertext, mtime)
    # The proper name is a link out of the outbox: a client that follows it reads another file entirely.
    os.symlink(HOSTILE_LINK_TARGET, ctx.outbox / return_name)
    fsync_dir(ctx.outbox)
    return len(names) + 1


def _answer_delivery(ctx: _Context, delivery: Path, delivery_id: str, tally: _Tally) -> None:
    agreement = ctx.agreement
    return_name = return_file_name(agreement, delivery_id)
    marker = delivery.with_name(delivery.name + ANSWERED_SUFFIX)
    if os.path.lexists(ctx.outbox / return_name):
        _write_marker(marker, {"return": return_name, "recovered": True})
        tally.add("deliveries_already_answered")
        log.info("%s: %s was answered by an earlier run (%s)", agreement.id, delivery.name, return_name)
        return
    if not set(recipient_key_ids(delivery)) & ctx.own_key_ids:
        raise DeliveryRefused(f"{agreement.id}: {delivery.name} is not encrypted to the partner's key")
    with tempfile.TemporaryDirectory(prefix="sf-partner-") as tmp:
        work = Path(tmp)
        plain = work / "delivery.csv"
        decrypted = decrypt_and_verify(
            delivery,
            plain,
            expected_signer_fingerprint=ctx.council_fingerprint,
            passphrase=None,
            gnupg_home=ctx.partner_gnupg_home,
        )
        sent = read_delivery(plain, agreement)
        plain.unlink()  # personal data: kept no longer than it takes to read
        answer = _answer(ctx, sent, delivery, decrypted)
        faulted = apply_row_faults(
            answer,
            ctx.faults,
            agreement,
            seed=ctx.seed,
            delivery_id=delivery_id,
            sent_references=[str(r) for r in sent["person_ref"].to_pylist()],
        )
        data = render_csv(answer.columns, faulted.rows)
        if Fault.MALFORMED_CSV in ctx.faults:
            data = malform_csv(data, len(answer.columns), ctx.seed, delivery_id)
        # Named as the return, so gpg's log line names the file the council will see.
        ciphertext = work / return_name
        answer_csv = work / return_name.removesuffix(".gpg").removesuffix(".pgp")
        answer_csv.write_bytes(data)
        with _signer(ctx) as signer:
            encrypt_and_sign(
                answer_csv,
                ciphertext,
                recipient_fingerprint=ctx.council_fingerprint,
                signer_fingerprint=signer.fingerprint,
                passphrase="",  # simulated partners' keys are unprotected (demo_secrets)
                gnupg_home=signer.gnupg_home,
            )
        answer_csv.unlink()
        if Fault.TAMPERED_CIPHERTEXT in ctx.faults:
            tamper(ciphertext, ctx.seed, delivery_id)
        mtime = None
        if Fault.LATE_FILE in ctx.faults:
            # Delivered when the council's upload was renamed into the inbox: the collected file's mtime.
            late = timedelta(days=agreement.returns.deadline_days + 1)
            mtime = delivery.stat().st_mtime + late.total_seconds()
        written = _place(ctx, return_name, delivery_id, ciphertext, mtime)

    counts = {
        "rows_received": sent.num_rows,
        "rows_returned": len(faulted.rows),
        "references_matched": answer.matched,
        "references_rejected": answer.rejected,
        "references_absent": answer.absent,
        "rows_dropped": faulted.dropped,
        "rows_duplicated": faulted.duplicated,
        "rows_unexpected": faulted.unexpected,
        "outbox_entries_written": written,
    }
    for name, n in counts.items():
        tally.add(name, n)
    tally.add("deliveries_answered")
    _write_marker(
        marker,
        {
            "return": return_name,
            "answered_at": datetime.now(UTC).isoformat(),
            "faults": sorted(f.value for f in ctx.faults),
            **counts,
        },
    )
    log.info(
        "%s: answered %s with %s: %d rows received, %d returned (%d matched, %d rejected, %d absent); "
        "faults %s",
        agreement.id,
        delivery.name,
        return_name,
        sent.num_rows,
        len(faulted.rows),
        answer.matched,
        answer.rejected,
        answer.absent,
        sorted(f.value for f in ctx.faults) or "none",
    )


def _truth_reader(partner_truth: UPath) -> Callable[[str], pa.Table]:
    cache: dict[str, pa.Table] = {}

    def read(name: str) -> pa.Table:
        if name not in cache:
            path = partner_truth / name
            if not path.exists():
                raise SimulatorError(
                    f"no partner truth {name} under {partner_truth}: generate a synthetic borough first"
                )
            cache[name] = read_parquet(path)
        return cache[name]

    return read


# -- the whole run ------------------------------------------------------------------------------------------


def simulate(
    agreement: Agreement,
    *,
    inbox: Path,
    outbox: Path,
    collected_dir: Path,
    partner_gnupg_home: Path,
    partner_fingerprint: str,
    council_fingerprint: str,
    partner_truth: UPath,
    as_of: date,
    faults: frozenset[Fault] = frozenset(),
    seed: int,
) -> SimulationReport:
    """Collect and answer every delivery for ``agreement`` not answered yet, as its partner would.

    ``partner_truth`` is the generator's ``demo/partner_truth`` folder; ``as_of`` the day the partner
    answers for (benefits in payment, the 12 months of police events). ``faults`` are injected into every
    return of this run. Returns counts only.
    """
    if agreement.partner.code not in PARTNERS and agreement.returns.kind != "receipt":
        raise UnsupportedPartner(
            f"{agreement.id}: the simulator plays {', '.join(PARTNERS)}, not {agreement.partner.code!r}"
        )
    for folder in (inbox, outbox):
        if not folder.is_dir():
            raise SimulatorError(f"{agreement.id}: {folder} is not a directory")
    return_file_name(agreement, "d" + "a" * 16)  # the pattern can name a return, before anything moves
    collected_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ctx = _Context(
        agreement=agreement,
        outbox=outbox,
        collected_dir=collected_dir,
        partner_gnupg_home=partner_gnupg_home,
        partner_fingerprint=normalise_fingerprint(partner_fingerprint),
        council_fingerprint=normalise_fingerprint(council_fingerprint),
        own_key_ids=own_key_ids(partner_gnupg_home, partner_fingerprint),
        truth=_truth_reader(partner_truth),
        as_of=as_of,
        faults=frozenset(faults),
        seed=seed,
    )
    tally = _Tally()
    collect(agreement, inbox, collected_dir, tally)
    for delivery, delivery_id in _pending(agreement, collected_dir):
        try:
            _answer_delivery(ctx, delivery, delivery_id, tally)
        except (DecryptionError, SignatureError, DeliveryRefused) as exc:
            # The message's own fault: a partner refuses it and tells the council (here: the marker).
            tally.add("deliveries_refused")
            log.warning("%s: refused %s: %s", agreement.id, delivery.name, type(exc).__name__)
            _write_marker(
                delivery.with_name(delivery.name + REFUSED_SUFFIX),
                {"error": type(exc).__name__, "detail": str(exc), "at": datetime.now(UTC).isoformat()},
            )
    report = SimulationReport(
        agreement_id=agreement.id,
        partner=agreement.partner.code,
        faults=tuple(sorted(f.value for f in ctx.faults)),
        **tally.counts,
    )
    log.info("%s: simulation %s", agreement.id, report.as_dict())
    return report
