"""Pseudonymisation key versions: a rotation recorded when the first delivery uses the new version, and
retirement of an old version, which ends its deliveries' reference lists.

The current version is ``pseudonymisation.key_version`` in the agreement's YAML, so a rotation is a reviewed
change to that file; the older versions whose references must still resolve (returns in flight) are
``previous_key_versions``. Every reference carries its version (``v<N>-...``), and a return is reconciled
against the reference list of the delivery it answers, so a return to a delivery made before the rotation
still reconciles. Retiring a version deletes the reference lists of the deliveries made under it and its key
goes from the secrets backend: its references then resolve to no one (UK GDPR Article 4(5): without the
additional information, the data can no longer be attributed to a person).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.share.delivery import Delivery
from supporting_families.share.package import Manifest
from supporting_families.store.io import delete_file
from supporting_families.store.layout import DELIVERIES


class RotationError(ValueError):
    """The agreement's YAML and its keys disagree; the message names the agreement and versions only."""


def check_key_versions(agreement: Agreement, available: set[int]) -> None:
    """The YAML's current and previous versions must each have a key behind them (and no more: a key made
    for a version the YAML does not name yet is a rotation waiting for its review)."""
    pseudo = agreement.pseudonymisation
    missing = sorted({pseudo.key_version, *pseudo.previous_key_versions} - available)
    if missing:
        raise RotationError(
            f"{agreement.id}: key version(s) {', '.join(map(str, missing))} named in the agreement"
            " have no key"
        )


def available_versions(agreement: Agreement, connections: dict[str, dict[str, object]]) -> set[int]:
    """The versions with a key in a connections file (``<key_conn_id>_v<N>``), after checking that the
    current connection ``<key_conn_id>`` holds the agreement's ``key_version`` (the YAML and the secret
    agree: a mismatch would make references that never resolve)."""
    conn_id = agreement.pseudonymisation.key_conn_id
    found = {
        int(name.removeprefix(f"{conn_id}_v"))
        for name in connections
        if name.startswith(f"{conn_id}_v") and name.removeprefix(f"{conn_id}_v").isdigit()
    }
    current = connections.get(conn_id, {}).get("password")
    pinned = connections.get(f"{conn_id}_v{agreement.pseudonymisation.key_version}", {}).get("password")
    if current is None or current != pinned:
        raise RotationError(
            f"{agreement.id}: the connection {conn_id} does not hold key version"
            f" {agreement.pseudonymisation.key_version}, the agreement's key_version"
        )
    return found


def rotation_entry(
    agreement: Agreement,
    delivery: Delivery,
    manifest: Manifest,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    triggered_by: str | None,
) -> NewEntry | None:
    """The ``key_rotation`` entry for the first delivery made under a new version (None for version 1, which
    replaced nothing). Its idempotency key is the agreement and the version, so only the first records it."""
    previous = agreement.pseudonymisation.previous_key_versions
    if manifest.key_version <= 1 and not previous:
        return None
    return NewEntry.for_agreement(
        agreement,
        kind="key_rotation",
        occurred_at=datetime.now(UTC),
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        triggered_by=triggered_by,
        details={
            "key": "pseudonymisation",
            "action": "first_use",
            "key_version": manifest.key_version,
            "previous_versions": sorted(previous),
            "delivery_id": delivery.delivery_id,
        },
        idempotency_key=idempotency_key("key_rotation", agreement.id, "first_use", str(manifest.key_version)),
    )


@dataclass(frozen=True)
class Retirement:
    version: int
    deliveries: int
    reference_lists_deleted: int


def retire_version(store: UPath, agreement: Agreement, version: int) -> Retirement:
    """Delete the reference lists of every delivery made under ``version``. Refused for a version the
    agreement still names (current or previous): take it out of the YAML first, a reviewed change."""
    pseudo = agreement.pseudonymisation
    if version == pseudo.key_version or version in pseudo.previous_key_versions:
        raise RotationError(
            f"{agreement.id}: version {version} is still named in the agreement (key_version or"
            " previous_key_versions); remove it there first"
        )
    folder = store / DELIVERIES / agreement.id
    deliveries = deleted = 0
    for path in sorted(folder.iterdir(), key=lambda p: p.name) if folder.exists() else []:
        delivery = Delivery(store, agreement.id, path.name)
        if not delivery.manifest_path.exists() or delivery.manifest().key_version != version:
            continue
        deliveries += 1
        if delivery.references_path.exists():
            delete_file(delivery.references_path)
            deleted += 1
    return Retirement(version, deliveries, deleted)


def retirement_entry(
    agreement: Agreement, retired: Retirement, *, run_id: str, triggered_by: str
) -> NewEntry:
    return NewEntry.for_agreement(
        agreement,
        kind="key_rotation",
        occurred_at=datetime.now(UTC),
        dag_id="cli",
        run_id=run_id,
        task_id="retire",
        triggered_by=triggered_by,
        details={
            "key": "pseudonymisation",
            "action": "retired",
            "key_version": retired.version,
            "deliveries": retired.deliveries,
            "reference_lists_deleted": retired.reference_lists_deleted,
        },
        idempotency_key=idempotency_key("key_rotation", agreement.id, "retired", str(retired.version)),
    )


__all__ = [
    "Retirement",
    "RotationError",
    "check_key_versions",
    "retire_version",
    "retirement_entry",
    "rotation_entry",
]
