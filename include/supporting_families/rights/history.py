"""What was disclosed about a person: every delivery and notice that included them, with the values sent.

The one core function, :func:`disclosure_history`, answers both subject access ("the disclosure history" in
the bundle, UK GDPR Article 15(1)(c): the recipients) and the DPO's per-person lookup on the auditor's
console (``plugins/sf_auditor.py``), so the two can never disagree about who received a person. It reads
the store only: each delivery's reference list says whether the person was in it, its manifest and receipt
say what and when, and the sealed controller-side copy says which values left
(``deliveries/<agreement>/<delivery_id>/sent.parquet.sealed``). The ledger holds the same deliveries
without persons; nothing personal is looked up there. The lookup asks for no values (``keys=None``): the
page shows which fields went where, and the values stay in the encrypted bundle (minimisation, UK GDPR
Article 5(1)(c)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.share.delivery import SENT_COPY, Delivery
from supporting_families.store.io import subfolders
from supporting_families.store.keystore import KeyShredded, KeyStore
from supporting_families.store.layout import DELIVERIES, NOTICES
from supporting_families.store.sealed import read_delivery_references, read_sealed_table


@dataclass(frozen=True)
class Disclosure:
    kind: str  # delivery | rectification | erasure
    agreement_id: str
    partner: str
    purpose: str
    legal_gateways: tuple[str, ...]
    delivery_id: str
    delivered_at: str | None
    fields: tuple[str, ...]
    #: the values as sent, field by field (one dict per row about the person); empty once shredded
    values: list[dict[str, Any]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    copy_status: str = "kept"  # kept | shredded | none | not_read (asked without the data keys)
    #: the agreement's version the delivery was packaged under (its manifest); None for a notice
    agreement_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agreement_id": self.agreement_id,
            "partner": self.partner,
            "purpose": self.purpose,
            "legal_gateways": list(self.legal_gateways),
            "delivery_id": self.delivery_id,
            "delivered_at": self.delivered_at,
            "fields": list(self.fields),
            "values": self.values,
            "references": self.references,
            "copy_status": self.copy_status,
            "agreement_version": self.agreement_version,
        }


def person_deliveries(store: UPath, person_id: str, keys: KeyStore) -> list[tuple[str, str, list[str]]]:
    """``(agreement_id, delivery_id, person_refs)`` of each delivery whose reference list holds the person.

    A delivery whose reference list is gone or whose period key is shredded cannot say who was in it, and
    is left out (its references resolve to nobody)."""
    found = []
    for agreement_dir in subfolders(store / DELIVERIES):
        for folder in subfolders(agreement_dir):
            table = read_delivery_references(
                store,
                agreement_dir.name,
                folder.name,
                keys,
                columns=["person_id", "person_ref"],
                filters=[("person_id", "==", person_id)],
            )
            if table is not None and table.num_rows:
                found.append((agreement_dir.name, folder.name, table["person_ref"].to_pylist()))
    return found


def disclosure_history(
    store: UPath,
    person_id: str,
    agreements: Mapping[str, Agreement],
    keys: KeyStore,
    *,
    with_values: bool = True,
) -> list[Disclosure]:
    """Every delivery and notice about ``person_id``, oldest first; ``with_values``, the values as sent.

    The keys open the sealed reference lists (who was in each delivery); the values come from the sealed
    copies only when asked for (the subject access bundle, never the console).

    A delivery packaged but never sent (no receipt) disclosed nothing and is left out; one whose reference
    list is gone (retention, erasure) can no longer say whether the person was in it.
    """
    out: list[Disclosure] = []
    for agreement_id, delivery_id, refs in person_deliveries(store, person_id, keys):
        delivery = Delivery(store, agreement_id, delivery_id)
        if not delivery.manifest_path.exists():
            continue
        manifest = delivery.manifest()
        receipt = delivery.receipt()
        if receipt is None:
            continue  # packaged but never sent: nothing was disclosed
        agreement = agreements.get(agreement_id)
        values: list[dict[str, Any]] = []
        status = "none"
        copy = delivery.folder / SENT_COPY
        if not with_values:
            status = "not_read"
        elif copy.exists():
            try:
                sent = read_sealed_table(copy, keys, delivery.sent_copy_context)
                mine = sent.filter(pc.equal(sent["person_id"], person_id)).drop_columns(["person_id"])
                values = mine.to_pylist()
                status = "kept"
            except KeyShredded:
                status = "shredded"
        out.append(
            Disclosure(
                kind="delivery",
                agreement_id=agreement_id,
                partner=manifest.partner,
                purpose=agreement.purpose if agreement else "",
                legal_gateways=tuple(agreement.legal_gateways) if agreement else (),
                delivery_id=delivery_id,
                delivered_at=receipt.get("delivered_at"),
                fields=manifest.fields,
                values=values,
                references=refs,
                copy_status=status,
                agreement_version=manifest.agreement_version,
            )
        )
    out.extend(_notices(store, person_id, agreements))
    return sorted(out, key=lambda d: d.delivered_at or "")


def _notices(store: UPath, person_id: str, agreements: Mapping[str, Agreement]) -> list[Disclosure]:
    out = []
    for agreement_dir in subfolders(store / NOTICES):
        for folder in subfolders(agreement_dir):
            manifest_path, receipt_path = folder / "manifest.json", folder / "receipt.json"
            if not (manifest_path.exists() and receipt_path.exists()):
                continue
            refs_path = folder / "references.parquet"
            if not refs_path.exists():
                continue
            with refs_path.open("rb") as fh:
                refs = pq.read_table(fh, filters=[("person_id", "==", person_id)])
            if refs.num_rows == 0:
                continue
            manifest = json.loads(manifest_path.read_text())
            receipt = json.loads(receipt_path.read_text())
            agreement = agreements.get(agreement_dir.name)
            out.append(
                Disclosure(
                    kind=str(manifest["kind"]),
                    agreement_id=agreement_dir.name,
                    partner=agreement.partner.code if agreement else "",
                    purpose=agreement.purpose if agreement else "",
                    legal_gateways=tuple(agreement.legal_gateways) if agreement else (),
                    delivery_id=folder.name,
                    delivered_at=receipt.get("delivered_at"),
                    fields=tuple(manifest["fields"]),
                    references=refs["person_ref"].to_pylist(),
                    copy_status="none",
                )
            )
    return out
