"""Where the simulator finds its inputs in the demo environment (``scripts/env.sh``), for the CLI and the DAG.

* the partners' private keys: ``$SF_SECRETS_DIR/gnupg-partners`` (``SecretsLayout.gnupg_partners``);
  ``$SF_SECRETS_DIR`` defaults to ``$SF_VAR/secrets``, as in ``scripts/env.sh``;
* the partner and council fingerprints: ``$SF_SECRETS_DIR/fingerprints.env``;
* the partners' SFTP folders: ``$SF_SFTP_ROOT``, default ``$SF_VAR/sftp/root`` (the set-up's
  ``sftp_server start --root``), then each agreement's ``sftp.remote_inbox`` / ``sftp.remote_outbox``;
* what each partner collected: ``$SF_PARTNER_SIMULATOR_DIR``, default ``$SF_VAR/partner_simulator``, then
  ``<agreement id>/collected``: outside the SFTP root, so the council sees only that a delivery left the
  inbox, never the partner's copy;
* the partner truth and its date: ``$SF_STORE_URI`` (``demo/partner_truth/``, ``demo/truth/manifest.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from upath import UPath

from sf_demo.partner_simulator.agency import AgencyReport, send_extract
from sf_demo.partner_simulator.answers import SimulatorError
from sf_demo.partner_simulator.faults import Fault
from sf_demo.partner_simulator.simulator import SimulationReport, simulate
from sf_demo.secrets import COUNCIL_FINGERPRINT_ENV, SecretsLayout, read_fingerprints_env
from sf_demo.synthetic.borough import agency_extracts
from supporting_families.config import Agreement, SourceSpec, load_agreements
from supporting_families.store import store_root

SFTP_ROOT_ENV = "SF_SFTP_ROOT"
SIMULATOR_DIR_ENV = "SF_PARTNER_SIMULATOR_DIR"
SECRETS_DIR_ENV = "SF_SECRETS_DIR"
VAR_ENV = "SF_VAR"


def _var(environ: Mapping[str, str], name: str, default_under_var: str) -> Path:
    value = environ.get(name)
    if value:
        return Path(value)
    var = environ.get(VAR_ENV)
    if not var:
        raise SimulatorError(f"neither ${name} nor ${VAR_ENV} is set: source scripts/env.sh first")
    return Path(var) / default_under_var


@dataclass(frozen=True)
class DemoEnvironment:
    secrets: SecretsLayout
    sftp_root: Path
    state_dir: Path
    store: UPath

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, store: UPath | None = None
    ) -> DemoEnvironment:
        """The environment ``scripts/env.sh`` sets up; ``store`` overrides ``$SF_STORE_URI`` (the DAG passes
        its ObjectStoragePath, which carries the store's connection)."""
        env = os.environ if environ is None else environ
        return cls(
            secrets=SecretsLayout(_var(env, SECRETS_DIR_ENV, "secrets")),
            sftp_root=_var(env, SFTP_ROOT_ENV, "sftp/root"),
            state_dir=_var(env, SIMULATOR_DIR_ENV, "partner_simulator"),
            store=store if store is not None else store_root(env.get("SF_STORE_URI")),
        )

    def fingerprints(self) -> dict[str, str]:
        path = self.secrets.fingerprints_env
        if not path.exists():
            raise SimulatorError(f"{path} does not exist: run the set-up (demo_secrets) first")
        return read_fingerprints_env(path)

    def council_fingerprint(self) -> str:
        fingerprints = self.fingerprints()
        if COUNCIL_FINGERPRINT_ENV not in fingerprints:
            raise SimulatorError(f"{self.secrets.fingerprints_env} has no {COUNCIL_FINGERPRINT_ENV}")
        return fingerprints[COUNCIL_FINGERPRINT_ENV]

    def agreements(self, agreements_dir: Path | None = None) -> list[Agreement]:
        """The agreements with their fingerprint placeholders resolved from ``fingerprints.env``."""
        return load_agreements(agreements_dir, env={**os.environ, **self.fingerprints()})

    def agreement(self, agreement_id: str, agreements_dir: Path | None = None) -> Agreement:
        found = {a.id: a for a in self.agreements(agreements_dir)}
        if agreement_id not in found:
            raise SimulatorError(f"no agreement {agreement_id!r}; agreements: {', '.join(sorted(found))}")
        return found[agreement_id]

    def inbox(self, agreement: Agreement) -> Path:
        return self.sftp_root / agreement.sftp.remote_inbox

    def outbox(self, agreement: Agreement) -> Path:
        return self.sftp_root / agreement.sftp.remote_outbox

    def collected_dir(self, agreement: Agreement) -> Path:
        return self.state_dir / agreement.id / "collected"

    @property
    def partner_truth(self) -> UPath:
        return self.store / "demo" / "partner_truth"

    def truth_as_of(self) -> date:
        """The synthetic borough's date (``demo/truth/manifest.json``): the day partners answer for."""
        path = self.store / "demo" / "truth" / "manifest.json"
        if not path.exists():
            raise SimulatorError(f"no {path}: generate a synthetic borough first (demo_synthetic_borough)")
        return date.fromisoformat(str(json.loads(path.read_text())["as_of"]))

    def run(
        self,
        agreement: Agreement,
        *,
        faults: frozenset[Fault] = frozenset(),
        seed: int,
        as_of: date | None = None,
    ) -> SimulationReport:
        """Play ``agreement``'s partner once (``as_of`` defaults to the synthetic borough's date)."""
        return simulate(
            agreement,
            inbox=self.inbox(agreement),
            outbox=self.outbox(agreement),
            collected_dir=self.collected_dir(agreement),
            partner_gnupg_home=self.secrets.gnupg_partners,
            partner_fingerprint=agreement.openpgp.partner_fingerprint,
            council_fingerprint=self.council_fingerprint(),
            partner_truth=self.partner_truth,
            as_of=as_of or self.truth_as_of(),
            faults=faults,
            seed=seed,
        )

    def send_agency_extract(
        self,
        spec: SourceSpec,
        *,
        faults: frozenset[Fault] = frozenset(),
        seed: int,
        as_of: date | None = None,
    ) -> AgencyReport:
        """Play the voluntary-sector agency of ``spec`` (``inbound:``): send its extract to its outbox."""
        if spec.inbound is None:
            raise SimulatorError(f"{spec.name} is not sent by an agency (no inbound: in sources.yaml)")
        fingerprints = self.fingerprints()
        return send_extract(
            spec,
            extracts=agency_extracts(self.store / "demo"),
            outbox=self.sftp_root / spec.inbound.sftp.remote_outbox,
            agency_gnupg_home=self.secrets.gnupg_partners,
            agency_fingerprint=spec.inbound.signer({**os.environ, **fingerprints}),
            council_fingerprint=self.council_fingerprint(),
            as_of=as_of or self.truth_as_of(),
            faults=faults,
            seed=seed,
        )
