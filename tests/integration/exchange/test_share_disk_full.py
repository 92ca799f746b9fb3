"""The council's own disk full while a share is staged and encrypted, for real: small tmpfs mounts (root, as
in CI) for the store's ``staging/`` and for ``$TMPDIR``, against the real gpg and sshd.

Whatever fills up, no truncated ciphertext reaches the partner (not even under a temporary name), no
``.partial`` is left behind, and once there is room again the share is delivered once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.share.delivery import (
    Delivery,
    deliver_delivery,
    delivery_id_for,
    encrypt_delivery,
    package_delivery,
    share_view,
)
from supporting_families.store.io import store_root
from supporting_families.store.keystore import FileKeyStore
from tests.integration.exchange.test_receive import DWP, clean_boxes
from tests.integration.platform_fixtures import PlatformEnv, small_register

pytestmark = pytest.mark.integration
__fixtures__ = (clean_boxes,)

PERSONS = 2000  # a staged CSV of about 100 KiB; its ciphertext about the same


@contextlib.contextmanager
def _full_tmpfs(folder: Path) -> Iterator[Path]:
    """``folder`` on a 512 KiB tmpfs filled up to its last 16 KiB: room for Python's probe of a writable
    temporary folder (a folder with no room at all is skipped for the next candidate, /tmp), none for a
    staged CSV or its ciphertext."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here (run as root, as CI does): {mounted.stderr.decode().strip()}")
    try:
        filler = folder / "filler"
        with filler.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
            while fh.write(b"\0" * 4096):
                pass
        os.truncate(filler, max(0, filler.stat().st_size - 16 * 1024))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _partials(*roots: Path) -> list[str]:
    return [str(p) for root in roots for p in root.rglob("*") if p.name.endswith((".partial", ".part"))]


def _inbox_names(platform_env: PlatformEnv) -> list[str]:
    agreement = platform_env.agreements[DWP]
    return sorted(os.listdir(platform_env.inbox(agreement)))


@pytest.fixture
def staged(platform_env: PlatformEnv, tmp_path: Path) -> tuple[UPath, Delivery, FileKeyStore]:
    (tmp_path / "store").mkdir()
    store = store_root((tmp_path / "store").as_uri())
    agreement = platform_env.agreements[DWP]
    delivery = Delivery(
        store, agreement.id, delivery_id_for(agreement.id, f"manual__disk-{uuid.uuid4().hex}")
    )
    return store, delivery, FileKeyStore(tmp_path / "data-keys")


def _package(platform_env: PlatformEnv, delivery: Delivery, keys: FileKeyStore) -> None:
    agreement = platform_env.agreements[DWP]
    persons = small_register(PERSONS, first_birth_year=2005)
    cohort = pa.table({"person_id": persons["person_id"]})
    view, refs = share_view(cohort, persons, platform_env.key(agreement), agreement)
    package_delivery(delivery, agreement, view, refs, f"manual__{delivery.delivery_id}", keys=keys)


def _encrypt(platform_env: PlatformEnv, delivery: Delivery) -> None:
    encrypt_delivery(
        delivery,
        platform_env.agreements[DWP],
        council_fingerprint=platform_env.council_fingerprint,
        passphrase=platform_env.council_passphrase,
        gnupg_home=platform_env.secrets.gnupg_council,
    )


def _deliver(platform_env: PlatformEnv, delivery: Delivery, keys: FileKeyStore) -> None:
    agreement = platform_env.agreements[DWP]
    deliver_delivery(delivery, agreement, platform_env.endpoint(agreement), keys=keys)


def test_a_full_staging_folder_stops_the_share_before_anything_leaves(
    platform_env: PlatformEnv,
    staged: tuple[UPath, Delivery, FileKeyStore],
    tmp_path: Path,
    clean_boxes: None,
) -> None:
    store, delivery, keys = staged
    before = _inbox_names(platform_env)
    staging = Path(str(store.path)) / "staging"
    with _full_tmpfs(staging):
        with pytest.raises(OSError):
            _package(platform_env, delivery, keys)
        with pytest.raises(Exception):  # noqa: B017 - nothing staged: nothing to encrypt or send
            _encrypt(platform_env, delivery)
        with pytest.raises(Exception):  # noqa: B017
            _deliver(platform_env, delivery, keys)
        assert _partials(Path(str(store.path))) == []
    assert _inbox_names(platform_env) == before, "nothing reached the partner, not even a temporary"

    # Room again: the retry packages, encrypts and delivers once.
    _package(platform_env, delivery, keys)
    _encrypt(platform_env, delivery)
    _deliver(platform_env, delivery, keys)
    assert _inbox_names(platform_env) == sorted([*before, delivery.ciphertext.name])
    assert _partials(Path(str(store.path))) == []


def test_a_full_tmpdir_while_encrypting_sends_no_truncated_ciphertext(
    platform_env: PlatformEnv,
    staged: tuple[UPath, Delivery, FileKeyStore],
    tmp_path: Path,
    clean_boxes: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, delivery, keys = staged
    before = _inbox_names(platform_env)
    _package(platform_env, delivery, keys)
    scratch = tmp_path / "tmpdir"
    with _full_tmpfs(scratch):
        monkeypatch.setenv("TMPDIR", str(scratch))
        monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches $TMPDIR
        with pytest.raises(OSError) as caught:
            _encrypt(platform_env, delivery)
        assert caught.value.errno == errno.ENOSPC, "the scratch folder filled up, nothing else failed"
        assert not delivery.ciphertext.exists(), "no truncated ciphertext archived for delivery"
        # The failed encryption took the staged plaintext with it (and the manifest, so a retry packages
        # again): no personal data waits in staging for the failure to be fixed.
        assert not delivery.staging_csv.exists(), "staged plaintext left behind by a failed encryption"
        assert not delivery.manifest_path.exists()
        assert [p for p in (Path(str(store.path)) / "staging").rglob("*") if p.is_file()] == []
        with pytest.raises(Exception):  # noqa: B017 - not encrypted: nothing is sent
            _deliver(platform_env, delivery, keys)
        assert _partials(Path(str(store.path)), scratch) == []
        assert sorted(p.name for p in scratch.iterdir()) == ["filler"], "nothing left in $TMPDIR"
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.delenv("TMPDIR")
    assert _inbox_names(platform_env) == before, "nothing reached the partner, not even a temporary"

    _package(platform_env, delivery, keys)
    _encrypt(platform_env, delivery)
    _deliver(platform_env, delivery, keys)
    assert _inbox_names(platform_env) == sorted([*before, delivery.ciphertext.name])
    assert _partials(Path(str(store.path))) == []
