"""Data keys per retention period, behind the project's own key-store interface.

The controller-side copies of what was sent are sealed under a data key for their retention period, so that
destroying one key makes every copy of that period unreadable, wherever a copy survives (object versions,
backups): crypto-shredding, for stores where deletion cannot be proven. Airflow's secrets backends are
read-only, so keys live behind :class:`KeyStore`, which can create and destroy. :class:`FileKeyStore` keeps
them as 0600 files under ``var/secrets/data_keys/`` (a folder of 0700); in production the same interface is
backed by Vault or a KMS, which can delete.

A period is a calendar month, ``YYYY-MM``: small enough that shredding at the retention boundary loses
nothing still needed, few enough keys to manage.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Final, Protocol

from supporting_families.store.io import delete_file, make_private_dirs, write_bytes_atomic

DATA_KEY_BYTES: Final = 32  # AES-256
#: A key id: a period (``YYYY-MM``), or a legal hold's own key (``h`` and six letters; the retention sweep
#: seals a held person's or agreement's copies under it so that their period can still be shredded).
_PERIOD: Final = re.compile(r"^([0-9]{4}-(0[1-9]|1[0-2])|h[a-p]{6})$")
KEYSTORE_ENV: Final = "SF_KEYSTORE_DIR"


class KeyShredded(LookupError):
    """The period's data key has been destroyed (or never existed): what it sealed cannot be read."""


def period_of(day: date | datetime) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _check_period(period: str) -> str:
    if not _PERIOD.fullmatch(period):
        raise ValueError("period: YYYY-MM or a hold key id (rule: retention period)")
    return period


class KeyStore(Protocol):
    def key(self, period: str, *, create: bool = False) -> bytes: ...

    def destroy(self, period: str) -> bool: ...

    def periods(self) -> list[str]: ...


class FileKeyStore:
    """Data keys as files ``<folder>/<period>.key`` (32 random bytes, mode 0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_env(cls) -> FileKeyStore:
        folder = os.environ.get(KEYSTORE_ENV)
        if not folder:
            raise KeyShredded(f"no key store: ${KEYSTORE_ENV} is not set")
        return cls(Path(folder))

    def _path(self, period: str) -> Path:
        return self.folder / f"{_check_period(period)}.key"

    def key(self, period: str, *, create: bool = False) -> bytes:
        path = self._path(period)
        if path.exists():
            data = path.read_bytes()
            if len(data) != DATA_KEY_BYTES:
                raise KeyShredded(f"data key {period}: malformed")
            return data
        if not create:
            raise KeyShredded(f"data key {period}: shredded or never made")
        make_private_dirs(self.folder)
        # os.urandom through secrets: the operating system's CSPRNG.
        write_bytes_atomic(path, secrets.token_bytes(DATA_KEY_BYTES))
        return path.read_bytes()

    def destroy(self, period: str) -> bool:
        path = self._path(period)
        if not path.exists():
            return False
        delete_file(path)
        return True

    def periods(self) -> list[str]:
        if not self.folder.exists():
            return []
        return sorted(p.stem for p in self.folder.glob("*.key") if _PERIOD.fullmatch(p.stem))
