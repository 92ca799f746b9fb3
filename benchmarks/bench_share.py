"""Share 1,000,000 persons to DWP end to end and time each stage, beside OpenSSH ``sftp`` and ``gpg``.

    .venv/bin/python benchmarks/bench_share.py [--persons 1000000]

Generates a synthetic borough, takes its persons as the register and every one of them as the cohort
(the benchmark's point is a million-row share), then runs the platform's own functions in order:

    select (cohort rule + restrictions) · pseudonymise (HMAC references) · minimise + package (CSV)
    · encrypt + sign (GnuPG, through supporting_families.transport.openpgp) · deliver (SFTP with read-back
    check)

and, in the same run, the ``gpg`` command line and OpenSSH's ``sftp`` on the same bytes. A private sshd and
fresh keys live in a temporary directory. Prints seconds and MB/s per stage; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow as pa

from sf_demo.secrets import SecretsLayout, generate_demo_secrets, stop_gpg_agents
from sf_demo.sftp_server import LocalSftpServer
from sf_demo.sftp_server import SftpServerInfo as ServerEndpoint
from sf_demo.synthetic import generate_borough
from supporting_families.config import load_agreements
from supporting_families.registers.restrictions import RESTRICTIONS_SCHEMA
from supporting_families.share.cohort import CohortInputs, register_rows, select_cohort
from supporting_families.share.package import minimise, write_partner_csv
from supporting_families.share.pseudonymise import PseudonymKey, active_path, references
from supporting_families.store import REGISTER_FIELDS
from supporting_families.transport.openpgp import encrypt_and_sign
from supporting_families.transport.sftp import SftpEndpoint, deliver

AS_OF = date(2026, 3, 31)


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    args = parser.parse_args()
    import json

    with tempfile.TemporaryDirectory(prefix="sf-bench-share-") as tmp:
        base = Path(tmp)
        server = LocalSftpServer(root=base / "root", state_dir=base / "sftp", chroot=False)
        server.start()
        try:
            generate_demo_secrets(base / "secrets", ServerEndpoint.from_server_state(base / "sftp"))
            layout = SecretsLayout(base / "secrets")
            agreements = {a.id: a for a in load_agreements(env=_env_file(layout.fingerprints_env))}
            dwp = agreements["dwp-benefits-matching"]
            conns = json.loads(layout.connections_file.read_text())
            council = conns["sf_openpgp_council"]
            key = PseudonymKey.from_hex(dwp.id, 1, conns[dwp.pseudonymisation.key_conn_id]["password"])
            sftp_conn = conns[dwp.sftp.conn_id]
            endpoint = SftpEndpoint(
                sftp_conn["host"],
                int(sftp_conn["port"]),
                sftp_conn["login"],
                host_key=sftp_conn["extra"]["host_key"],
                private_key_path=Path(sftp_conn["extra"]["key_file"]),
            )

            t = time.perf_counter()
            borough = generate_borough(args.persons, seed=1, as_of=AS_OF)
            persons = borough.persons.select(list(REGISTER_FIELDS))
            print(
                f"generate {args.persons:,} persons (not part of the share): {time.perf_counter() - t:.1f} s"
            )
            stages: dict[str, float] = {}

            t = time.perf_counter()
            everyone = pa.table({"person_id": persons["person_id"], "family_id": persons["family_id"]})
            inputs = CohortInputs(
                persons=persons,
                person_flags=everyone,
                family_problems=everyone,
                assessments=pa.table(
                    {"family_id": pa.array([], pa.string()), "programme_status": pa.array([], pa.string())}
                ),
                other_services=pa.array([], pa.string()),
                restrictions=RESTRICTIONS_SCHEMA.empty_table(),
                as_of=AS_OF,
            )
            cohort = select_cohort(dwp, inputs)  # the rule, then restrictions on the share date
            view, _ = register_rows(cohort.table, persons)
            stages["select"] = time.perf_counter() - t

            t = time.perf_counter()
            view = view.append_column("person_ref", references(view["person_id"], key, "person"))
            stages["pseudonymise"] = time.perf_counter() - t

            t = time.perf_counter()
            plain = base / "share.csv"
            rows = write_partner_csv(minimise(view, dwp), dwp, plain)
            stages["minimise + package"] = time.perf_counter() - t
            size = plain.stat().st_size

            t = time.perf_counter()
            cipher = base / "share.csv.gpg"
            result = encrypt_and_sign(
                plain,
                cipher,
                recipient_fingerprint=dwp.openpgp.partner_fingerprint,
                signer_fingerprint=council["extra"]["fingerprint"],
                passphrase=council["password"],
                gnupg_home=layout.gnupg_council,
            )
            stages["encrypt + sign"] = time.perf_counter() - t

            t = time.perf_counter()
            outcome = deliver(
                endpoint, cipher, dwp.sftp.remote_inbox, "bench.csv.gpg", sha256=result.ciphertext_sha256
            )
            stages["deliver (SFTP, verified)"] = time.perf_counter() - t

            # The command-line tools on the same bytes, in the same run.
            t = time.perf_counter()
            subprocess.run(
                [
                    "gpg", "--homedir", str(layout.gnupg_council), "--batch", "--yes", "--pinentry-mode",
                    "loopback", "--passphrase-fd", "0", "--compress-algo", "none", "--local-user",
                    council["extra"]["fingerprint"], "--recipient", dwp.openpgp.partner_fingerprint,
                    "--sign", "--encrypt", "--output", str(base / "cli.gpg"), str(plain),
                ],
                input=council["password"].encode(),
                check=True,
                capture_output=True,
            )  # fmt: skip
            gpg_cli = time.perf_counter() - t
            known = base / "known_hosts"
            known.write_text(f"[127.0.0.1]:{server.port} {server.host_public_key}\n")
            batch = base / "batch"
            batch.write_text(f"put {cipher} {dwp.sftp.remote_inbox}/openssh.csv.gpg\n")
            t = time.perf_counter()
            subprocess.run(
                [
                    "sftp", "-q", "-b", str(batch), "-i", sftp_conn["extra"]["key_file"],
                    "-P", str(server.port),
                    "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-F", "/dev/null",
                    f"{sftp_conn['login']}@127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            sftp_cli = time.perf_counter() - t
        finally:
            server.stop()
            stop_gpg_agents(base / "secrets")

    total = sum(stages.values())
    mb = f"{size / 1e6:,.0f} MB CSV, {result.ciphertext_bytes / 1e6:,.0f} MB OpenPGP"
    print(f"\nDWP share of {rows:,} persons: {mb}")
    for name, seconds in stages.items():
        print(f"  {name:<26} {seconds:7.2f} s")
    print(f"  {'total':<26} {total:7.2f} s   ({rows / total:,.0f} persons/s)")
    print(f"  references: {rows / stages['pseudonymise']:,.0f} per second ({active_path()})")
    print(f"  deliver: upload {outcome.upload_seconds:.2f} s, read-back check {outcome.verify_seconds:.2f} s")
    print("\nSame bytes, command-line tools:")
    print(f"  gpg --sign --encrypt (no compression) {gpg_cli:6.2f} s   ours {stages['encrypt + sign']:.2f} s")
    print(
        f"  OpenSSH sftp put (default cipher)     {sftp_cli:6.2f} s   ours upload "
        f"{outcome.upload_seconds:.2f} s = {sftp_cli / outcome.upload_seconds:.0%} of OpenSSH's speed"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
