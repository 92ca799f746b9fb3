"""Subject access and portability bundles: rendered, zipped, encrypted to one OpenPGP key, kept in the store.

Subject access (UK GDPR Article 15): ``subject_access.json`` (machine-readable, the whole dossier),
``subject_access.html`` (for a person to read) and ``disclosures.csv`` (one row per field sent per
delivery), zipped and encrypted to the data protection officer's key, signed by the council, under
``rights/<request_id>/``. The DPO checks it and sends it to the person; the platform never sends it.

Portability (UK GDPR Article 20): ``portability.json`` in the documented format of
``docs/portability.schema.json`` (the data the person's records provided: the register record and the
source records), encrypted to the receiving authority's key given by fingerprint.
"""

from __future__ import annotations

import csv
import html
import io
import zipfile
from pathlib import Path
from typing import Any, Final

from upath import UPath

from supporting_families.rights.dossier import to_json
from supporting_families.store.io import copy_into, private_tempdir, write_bytes_atomic
from supporting_families.store.layout import rights_dir
from supporting_families.transport.openpgp import encrypt_and_sign

PORTABILITY_FORMAT: Final = "supporting-families-portability/1"
_FIXED_TIME: Final = (2020, 1, 1, 0, 0, 0)  # zip entries carry no clock: the same dossier, the same bytes


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>None held.</em></p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def render_html(dossier: dict[str, Any]) -> str:
    """The dossier as one self-contained page (no scripts, no external resources)."""
    ident = dossier["identification"]
    sections = [
        ("What the register holds about you", _table([dossier["register_record"]])),
        ("The records that were linked to you, by department", _table(dossier["source_records"])),
        (
            f"Headline problems found (identification of {_text(ident['as_of'])}), with the reasons",
            _table(ident["flags_with_reasons"]),
        ),
        ("Your family's headline problems", _table(ident["family_headline_problems"])),
        ("Practitioners' decisions about your family", _table(dossier["assessments"])),
        ("Answers received from partners", _table(dossier["partner_answers"])),
        ("Your requests", _table(dossier["requests"])),
        ("Restrictions and objections", _table(dossier["restrictions"])),
        ("Corrections", _table(dossier["corrections"])),
        ("Legal holds", _table(dossier["legal_holds"])),
    ]
    disclosures = []
    for d in dossier["disclosures"]:
        disclosures.append(
            f"<h3>{html.escape(d['kind'])} to {html.escape(d['partner'])} on "
            f"{html.escape(_text(d['delivered_at']))}</h3><p>Agreement "
            f"<code>{html.escape(d['agreement_id'])}</code>, delivery "
            f"<code>{html.escape(d['delivery_id'])}</code>. Purpose: {html.escape(d['purpose'])}. Legal "
            f"gateways: {html.escape(', '.join(d['legal_gateways']))}. Fields: "
            f"{html.escape(', '.join(d['fields']))}.</p>" + _table(d["values"])
        )
    body = "".join(f"<h2>{html.escape(t)}</h2>{c}" for t, c in sections)
    body += "<h2>Who your information was shared with</h2>" + ("".join(disclosures) or "<p>Nobody.</p>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Subject access</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #999;padding:.2em .5em;text-align:left}</style></head><body>"
        "<h1>Supporting Families: the information we hold about you</h1>"
        "<p>Prepared under UK GDPR Article 15. Internal ids are the council's own.</p>"
        f"{body}</body></html>\n"
    )


def disclosures_csv(dossier: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["delivered_at", "kind", "partner", "agreement_id", "delivery_id", "field", "value"])
    for d in dossier["disclosures"]:
        for row in d["values"] or [{f: "" for f in d["fields"]}]:
            for name in d["fields"]:
                if name in row:
                    writer.writerow(
                        [
                            d["delivered_at"],
                            d["kind"],
                            d["partner"],
                            d["agreement_id"],
                            d["delivery_id"],
                            name,
                            _text(row[name]),
                        ]
                    )
    return out.getvalue()


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


def _encrypt_into_store(
    data: bytes,
    target: UPath,
    *,
    recipient_fingerprint: str,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> str:
    """Encrypt ``data`` to one recipient (signed by the council) and keep it at ``target``; its SHA-256."""
    with private_tempdir("sf-rights-") as tmp:
        plain = tmp / "bundle"
        write_bytes_atomic(plain, data)
        out = tmp / target.name
        result = encrypt_and_sign(
            plain,
            out,
            recipient_fingerprint=recipient_fingerprint,
            signer_fingerprint=council_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
        )
        copy_into(out, target)
    return result.ciphertext_sha256


def write_subject_access(
    store: UPath,
    request_id: str,
    dossier: dict[str, Any],
    *,
    dpo_fingerprint: str,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> dict[str, Any]:
    """Render, zip and encrypt the bundle to the DPO; returns counts and hashes (no values)."""
    files = {
        "subject_access.json": to_json(dossier),
        "subject_access.html": render_html(dossier),
        "disclosures.csv": disclosures_csv(dossier),
    }
    target = rights_dir(store, request_id) / "subject_access.zip.gpg"
    sha = _encrypt_into_store(
        _zip(files),
        target,
        recipient_fingerprint=dpo_fingerprint,
        council_fingerprint=council_fingerprint,
        passphrase=passphrase,
        gnupg_home=gnupg_home,
    )
    return {
        "bundle": "/".join(target.parts[len(store.parts) :]),
        "bundle_sha256": sha,
        "source_records": len(dossier["source_records"]),
        "flags": len(dossier["identification"]["flags_with_reasons"]),
        "partner_answers": len(dossier["partner_answers"]),
        "disclosures": len(dossier["disclosures"]),
    }


def portability_document(dossier: dict[str, Any]) -> dict[str, Any]:
    """The portability export (``docs/portability.schema.json``): what the person's records provided."""
    return {
        "format": PORTABILITY_FORMAT,
        "person": dossier["register_record"],
        "source_records": dossier["source_records"],
        "headline_problems": dossier["identification"]["flags_with_reasons"],
        "programme_status": dossier["current_programme_status"],
    }


def write_portability(
    store: UPath,
    request_id: str,
    dossier: dict[str, Any],
    *,
    recipient_fingerprint: str,
    council_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
) -> dict[str, Any]:
    document = to_json(portability_document(dossier))
    target = rights_dir(store, request_id) / "portability.json.gpg"
    sha = _encrypt_into_store(
        document.encode("utf-8"),
        target,
        recipient_fingerprint=recipient_fingerprint,
        council_fingerprint=council_fingerprint,
        passphrase=passphrase,
        gnupg_home=gnupg_home,
    )
    return {
        "export": "/".join(target.parts[len(store.parts) :]),
        "export_sha256": sha,
        "source_records": len(dossier["source_records"]),
    }
