"""The faults the simulator can inject on request, each deterministic from the seed.

Standard library only: the demo DAG imports this module at parse time to build its Params form.

What each fault leaves behind (the artefact the council's receive side must catch):

``missing_rows``
    Per-reference returns: about 5% of the rows the partner should have returned (at least one) are left
    out, so their references look like "no trace". ONS receipt: ``rows_received`` understates the rows in
    the delivery by about 5% (at least one), as if ONS had loaded only part of the file.
``duplicates``
    About 3% of the rows (at least one) appear twice, byte for byte. ONS: the receipt row appears twice.
``unexpected_references``
    About 1% extra rows (at least one) carry well-formed references of the agreement's key version that
    were never sent. ONS: an extra receipt row for a delivery file that was never sent.
``malformed_csv``
    The decrypted CSV is broken: one data row gets an extra field (a ragged row) and a last line opens a
    quoted field that is never closed (broken quoting).
``wrong_signer``
    The return is signed by another key: another partner's key from the simulator's keyring when there is
    one (the council sees a valid signature by a key it knows, just not the pinned one), else a freshly
    generated outsider key (a signer the council does not know at all).
``tampered_ciphertext``
    One byte among the last 20 of the encrypted file is flipped after encryption: inside the encrypted
    modification detection code, so decryption must fail its integrity (MDC) check.
``late_file``
    The return's modification time (what SFTP reports as when the partner wrote it) is set to one day
    after the deadline: delivery time (the collected file's mtime, i.e. when the council's upload was
    renamed into the inbox) plus the agreement's ``returns.deadline_days`` plus one day. The file is not
    held back, so a test needs no waiting; the time may lie in the future, which is what a partner's
    clock says when it is wrong, and the receive side must judge lateness by it all the same.
``hostile_file_name``
    No return under a safe name. The proper return name is a symbolic link to ``/etc/passwd`` (outside the
    outbox); the real return sits under names the council must refuse: one with ``..``, one with an
    escape (control) character, both matching the agreement's pattern, and a hidden one (leading dot).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["Fault", "FaultError", "parse_faults"]


class Fault(StrEnum):
    MISSING_ROWS = "missing_rows"
    DUPLICATES = "duplicates"
    UNEXPECTED_REFERENCES = "unexpected_references"
    MALFORMED_CSV = "malformed_csv"
    WRONG_SIGNER = "wrong_signer"
    TAMPERED_CIPHERTEXT = "tampered_ciphertext"
    LATE_FILE = "late_file"
    HOSTILE_FILE_NAME = "hostile_file_name"


class FaultError(ValueError):
    """A fault name that the simulator does not know."""


def parse_faults(names: Iterable[str]) -> frozenset[Fault]:
    """The faults named (``"missing_rows"``, ...); FaultError lists the unknown names and the known ones."""
    wanted = [name.strip() for name in names if name.strip()]
    known = {f.value for f in Fault}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise FaultError(f"unknown fault(s) {unknown}; known faults: {', '.join(sorted(known))}")
    return frozenset(Fault(name) for name in wanted)
