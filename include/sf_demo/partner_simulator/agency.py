"""A voluntary-sector agency sends its extract: the agency's side of ``inbound:`` in ``sources.yaml``.

The synthetic borough writes each agency's extract where the agency keeps it (``demo/agencies/``). Sending
it is what the agency's own system would do: encrypt to the council's key, sign with the agency's key, and
put it in the agency's SFTP outbox under ``<source>_<extract date>.csv.gpg``, whole or not at all. A file
already sent (that name in the outbox) is not sent again.

Faults, each deterministic from the seed (the council's collect and ingest must catch them):

``malformed_csv``
    One data row gets a field too many (a ragged row): signed and encrypted correctly, so it lands, and
    ingest quarantines it whole with a report naming the file, the row and the rule (``ragged_rows``).
``wrong_signer``
    Signed by another key of the simulator's keyring (a partner's), or an outsider's: quarantined at
    collection, never landed.
``tampered_ciphertext``
    One byte of the integrity-protected packet flipped: the integrity check fails at collection.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from upath import UPath

from sf_demo.partner_simulator.determinism import digest
from sf_demo.partner_simulator.faults import Fault
from sf_demo.partner_simulator.injection import tamper
from sf_demo.partner_simulator.keys import Signer, other_signer, outsider_signer
from sf_demo.partner_simulator.simulator import _publish
from supporting_families.config.sources import SourceSpec
from supporting_families.transport.openpgp import encrypt_and_sign

log = logging.getLogger(__name__)

#: The faults an agency's file can carry.
AGENCY_FAULTS = (Fault.MALFORMED_CSV, Fault.WRONG_SIGNER, Fault.TAMPERED_CIPHERTEXT)


@dataclass(frozen=True)
class AgencyReport:
    source: str
    files_sent: int
    already_sent: int
    rows: int
    faults: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "files_sent": self.files_sent,
            "already_sent": self.already_sent,
            "rows_sent": self.rows,
            "faults": list(self.faults),
        }


def remote_name(spec: SourceSpec, as_of: date) -> str:
    return spec.remote_pattern.replace("*", as_of.strftime(spec.extract_date_format))


def ragged_row(data: bytes, seed: int, name: str) -> bytes:
    """One data row with a field too many (quoted, so the quotes stay balanced); the seed picks the row."""
    lines = data.rstrip(b"\n").split(b"\n")
    if len(lines) < 2:
        raise ValueError("an extract with no data row cannot be made ragged")
    at = 1 + int.from_bytes(digest(seed, "agency_ragged_row", name)[:4], "big") % (len(lines) - 1)
    lines[at] = lines[at] + b',"ragged"'
    return b"\n".join(lines) + b"\n"


@contextlib.contextmanager
def _signer(home: Path, own: str, council: str, faults: frozenset[Fault]) -> Iterator[Signer]:
    if Fault.WRONG_SIGNER not in faults:
        yield Signer(home, own)
        return
    other = other_signer(home, own, council)
    if other is not None:
        yield other
        return
    with outsider_signer(home, council) as outsider:
        yield outsider


def send_extract(
    spec: SourceSpec,
    *,
    extracts: UPath,
    outbox: Path,
    agency_gnupg_home: Path,
    agency_fingerprint: str,
    council_fingerprint: str,
    as_of: date,
    faults: frozenset[Fault] = frozenset(),
    seed: int = 0,
) -> AgencyReport:
    """Send the agency's extract of ``as_of`` from ``extracts`` (``demo/agencies/``) to its ``outbox``."""
    unknown = sorted(f.value for f in faults if f not in AGENCY_FAULTS)
    if unknown:
        raise ValueError(f"{spec.name}: an agency's file cannot carry {unknown}")
    name = remote_name(spec, as_of)
    chosen = tuple(sorted(f.value for f in faults))
    if (outbox / name).exists():
        log.info("%s: the extract of %s was sent before", spec.name, as_of)
        return AgencyReport(spec.name, 0, 1, 0, chosen)
    data = (extracts / spec.path_for(as_of)).read_bytes()
    rows = data.count(b"\n") - 1
    if Fault.MALFORMED_CSV in faults:
        data = ragged_row(data, seed, name)
    with tempfile.TemporaryDirectory(prefix="sf-agency-") as tmp:
        plain, cipher = Path(tmp) / "extract.csv", Path(tmp) / name
        plain.write_bytes(data)
        with _signer(agency_gnupg_home, agency_fingerprint, council_fingerprint, faults) as signer:
            encrypt_and_sign(
                plain,
                cipher,
                recipient_fingerprint=council_fingerprint,
                signer_fingerprint=signer.fingerprint,
                passphrase="",
                gnupg_home=signer.gnupg_home,
            )
        if Fault.TAMPERED_CIPHERTEXT in faults:
            tamper(cipher, seed, name)
        _publish(outbox, name, cipher, None)
    log.info("%s: sent %d rows (faults: %s)", spec.name, rows, ", ".join(chosen) or "none")
    return AgencyReport(spec.name, 1, 0, rows, chosen)
