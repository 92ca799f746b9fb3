"""Benchmark OpenPGP: encrypt+sign then decrypt+verify a large file, ours against the gpg command line.

    .venv/bin/python benchmarks/bench_openpgp.py [--size-mib 256] [--repeat 2] [--workdir /tmp]

``supporting_families.transport.openpgp`` streams the data
through gpg's
pipes and hashes both sides (SHA-256) on the way; the command line reads and writes files itself and hashes
nothing. Both use the same fresh keyrings (an ed25519/cv25519 council key behind a passphrase, the partner's
without) and the same bytes: CSV-like rows, as compressible as a real delivery. The gpg command line is run
without compression (what we do), without compression followed by SHA-256 of both files (the same result as
ours, in two passes), and with gpg's default (ZIP), which the share issue says costs ~9x.

Each MB/s figure is the data size (10^6 bytes) over the wall time of one call, so it includes gpg's start-up
and the passphrase KDF of the council key (printed on its own as "fixed cost"). On shared, loaded cores wall
time swings from run to run, so the CPU seconds of this process and its gpg children are printed too: they
show what the streaming and hashing cost, whatever else the machine is doing. Only sizes, times and
throughputs are printed, never data.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from supporting_families.transport.openpgp import decrypt_and_verify, encrypt_and_sign, parse_key_listing

PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105 (throw-away keys)
COUNCIL_UID = "Council (benchmark) <council@bench.invalid>"
PARTNER_UID = "Partner (benchmark) <partner@bench.invalid>"
BLOCK = 4 << 20
STREETS = ("High Street", "Church Road", "Station Road", "Mill Lane", "Victoria Road", "Park Avenue")


def _gpg(home: Path, *args: str, passphrase: str | None = None) -> bytes:
    command = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--yes"]
    stdin = None
    if passphrase is not None:
        command += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        stdin = (passphrase + "\n").encode()
    return subprocess.run([*command, *args], input=stdin, capture_output=True, check=True).stdout


def _fingerprints(home: Path, uid: str) -> list[str]:
    """Fingerprints of ``uid``'s key: the primary first, then its subkeys."""
    [key] = parse_key_listing(_gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys", uid).decode())
    return [part.fingerprint for part in key.parts]


def make_keyrings(base: Path) -> tuple[Path, Path, str, str, str]:
    """Council and partner keyrings that know each other.

    Returns (council home, partner home, council fingerprint, partner fingerprint, partner encryption
    subkey fingerprint).
    """
    council, partner = base / "council", base / "partner"
    for home in (council, partner):
        home.mkdir(mode=0o700)
    _gpg(council, "--quick-gen-key", COUNCIL_UID, "ed25519", "sign", "1y", passphrase=PASSPHRASE)
    council_fpr = _fingerprints(council, COUNCIL_UID)[0]
    _gpg(council, "--quick-add-key", council_fpr, "cv25519", "encr", "1y", passphrase=PASSPHRASE)
    _gpg(partner, "--quick-gen-key", PARTNER_UID, "ed25519", "sign", "1y", passphrase="")
    partner_fpr = _fingerprints(partner, PARTNER_UID)[0]
    _gpg(partner, "--quick-add-key", partner_fpr, "cv25519", "encr", "1y", passphrase="")
    (base / "council.pgp").write_bytes(_gpg(council, "--export", council_fpr))
    (base / "partner.pgp").write_bytes(_gpg(partner, "--export", partner_fpr))
    _gpg(council, "--import", str(base / "partner.pgp"))
    _gpg(partner, "--import", str(base / "council.pgp"))
    # Certify each other's key locally, as set-up does after checking fingerprints out of band.
    _gpg(council, "--quick-lsign-key", partner_fpr, passphrase=PASSPHRASE)
    _gpg(partner, "--quick-lsign-key", council_fpr, passphrase="")
    return council, partner, council_fpr, partner_fpr, _fingerprints(council, PARTNER_UID)[1]


def make_data(path: Path, size: int, seed: int = 0) -> None:
    """CSV-like rows (reference, address, postcode, UPRN): unique 4 MiB blocks, repeated to ``size``.

    Repeating beyond ZIP's 32 KiB window does not help gpg's compression, so the ratio stays realistic.
    """
    rng = random.Random(seed)
    blocks: list[bytes] = []
    for _ in range(8):
        rows: list[str] = []
        length = 0
        while length < BLOCK:
            row = (
                f"DWP1-{rng.getrandbits(64):016x},{rng.randint(1, 400)} {rng.choice(STREETS)},"
                f"Flat {rng.randint(1, 40)},London,W{rng.randint(1, 14)} {rng.randint(1, 9)}"
                f"{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')},{rng.randint(10**10, 10**11)}\n"
            )
            rows.append(row)
            length += len(row)
        blocks.append("".join(rows).encode()[:BLOCK])
    with path.open("wb") as fh:
        written = 0
        while written < size:
            block = blocks[(written // BLOCK) % len(blocks)][: size - written]
            fh.write(block)
            written += len(block)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _same_bytes(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while chunk := fa.read(BLOCK):
            if chunk != fb.read(BLOCK):
                return False
        return not fb.read(1)


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (gpg; not gpg-agent, a daemon)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measured(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    action()
    return time.perf_counter() - start, _cpu_seconds() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="bench-openpgp-", dir=args.workdir))
    council = partner = base
    try:
        council, partner, council_fpr, partner_fpr, partner_subkey = make_keyrings(base)
        data = base / "delivery.csv"
        size = args.size_mib << 20
        make_data(data, size)
        tiny = base / "tiny.csv"
        tiny.write_bytes(b"x\n")
        ours_ct, ours_pt = base / "ours.csv.gpg", base / "ours.csv"
        cli_ct, cli_pt = base / "cli.csv.gpg", base / "cli.csv"
        zip_ct, zip_pt = base / "zip.csv.gpg", base / "zip.csv"

        def ours_encrypt(source: Path = data, target: Path = ours_ct) -> object:
            return encrypt_and_sign(
                source,
                target,
                recipient_fingerprint=partner_fpr,
                signer_fingerprint=council_fpr,
                passphrase=PASSPHRASE,
                gnupg_home=council,
            )

        def ours_decrypt() -> object:
            return decrypt_and_verify(
                ours_ct, ours_pt, expected_signer_fingerprint=council_fpr, passphrase=None, gnupg_home=partner
            )

        def cli_encrypt(target: Path, *compression: str, source: Path = data) -> object:
            return _gpg(
                council, "--sign", "--encrypt", "-r", f"{partner_subkey}!", "-u", f"{council_fpr}!",
                *compression, "--output", str(target), str(source), passphrase=PASSPHRASE,
            )  # fmt: skip

        def cli_decrypt(source: Path, target: Path) -> object:
            return _gpg(partner, "--decrypt", "--output", str(target), str(source))

        gpg_version = _gpg(council, "--version").decode().splitlines()[0]
        print(f"gpg                  {gpg_version}")
        print(f"cores                {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start")
        print(f"data                 {args.size_mib} MiB CSV-like rows ({size:,} bytes)")
        ours_encrypt()  # warm: gpg-agent started, passphrase cached, page cache filled
        fixed_ours = timed(lambda: ours_encrypt(tiny, base / "tiny-ours.gpg"))
        fixed_cli = timed(lambda: cli_encrypt(base / "tiny-cli.gpg", "--compress-algo", "none", source=tiny))
        print(f"fixed cost per call  ours {fixed_ours:.2f} s, gpg CLI {fixed_cli:.2f} s (1-byte file)")
        hashing = timed(lambda: _sha256(data))
        print(
            f"SHA-256 of the data  {size / hashing / 1e6:.0f} MB/s (ours hashes both sides; the CLI neither)"
        )
        print()
        header = f"{'run':<4}{'operation':<42}{'wall s':>7}{'MB/s':>6}{'vs CLI':>7}{'CPU s':>7}{'vs CLI':>7}"
        print(header)
        print("-" * len(header))
        for run in range(1, args.repeat + 1):
            figures = {
                "ours encrypt+sign (no compression)": measured(ours_encrypt),
                "gpg CLI encrypt+sign --compress-algo none": measured(
                    lambda: cli_encrypt(cli_ct, "--compress-algo", "none")
                ),
                "gpg CLI encrypt+sign, then SHA-256 both": measured(
                    lambda: (cli_encrypt(cli_ct, "--compress-algo", "none"), _sha256(data), _sha256(cli_ct))
                ),
                "gpg CLI encrypt+sign (default ZIP)": measured(lambda: cli_encrypt(zip_ct)),
                "ours decrypt+verify": measured(ours_decrypt),
                "gpg CLI decrypt+verify (uncompressed)": measured(lambda: cli_decrypt(cli_ct, cli_pt)),
                "gpg CLI decrypt+verify, then SHA-256 both": measured(
                    lambda: (cli_decrypt(cli_ct, cli_pt), _sha256(cli_ct), _sha256(cli_pt))
                ),
                "gpg CLI decrypt+verify (ZIP)": measured(lambda: cli_decrypt(zip_ct, zip_pt)),
            }
            baseline = {
                "encrypt": figures["gpg CLI encrypt+sign --compress-algo none"],
                "decrypt": figures["gpg CLI decrypt+verify (uncompressed)"],
            }
            for name, (wall, cpu) in figures.items():
                base_wall, base_cpu = baseline["encrypt" if "encrypt" in name else "decrypt"]
                rate = size / wall / 1e6
                print(
                    f"{run:<4}{name:<42}{wall:>7.2f}{rate:>6.0f}{base_wall / wall:>7.0%}"
                    f"{cpu:>7.2f}{cpu / base_cpu:>7.1f}x"
                )
            if not _same_bytes(ours_pt, data):
                raise SystemExit("round trip changed the data")
        print()
        print(
            f"ciphertext bytes     uncompressed {ours_ct.stat().st_size:,}, "
            f"ZIP {zip_ct.stat().st_size:,} ({zip_ct.stat().st_size / size:.0%} of the data)"
        )
        print(f"load average at end  {os.getloadavg()[0]:.2f}")
    finally:
        for home in (council, partner):
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
            )
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
