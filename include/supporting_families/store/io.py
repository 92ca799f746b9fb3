"""One base URI for everything the platform stores, and the one way to write into it.

``file://`` inside the project by default, ``s3://`` in production. The core works on
:class:`upath.UPath` objects; Airflow's ``ObjectStoragePath`` is a subclass, so DAG tasks pass theirs
straight in, and the tests drive the same functions against a local directory and an S3 server.

Every write goes through :func:`atomic_writer`: readers see the old file or the whole new one, never a part,
and a crash leaves at most a hidden temporary file with a unique name. On a local file system the file is
written under a unique temporary name (``mkstemp``), fsynced, renamed, and its folder fsynced; files are
0600 and the folders it creates 0700, because the store holds personal data (privacy notice: "held
securely"; UK GDPR Article 32). Object stores make a PUT visible only once it is complete, so there a write
is one PUT.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

DEFAULT_STORE_ENV = "SF_STORE_URI"
#: Owner only: stored personal data is readable by its owner alone.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_CHUNK = 8 << 20


def store_root(uri: str | None = None, **storage_options: Any) -> UPath:
    """The store's root path for ``uri`` (or ``$SF_STORE_URI``).

    ``storage_options`` go to fsspec (for S3: ``endpoint_url``, ``key``, ``secret``...).
    """
    uri = uri or os.environ.get(DEFAULT_STORE_ENV)
    if not uri:
        raise ValueError(f"no storage URI given and ${DEFAULT_STORE_ENV} is not set")
    if "://" not in uri:
        raise ValueError(f"storage URI {uri!r} has no scheme: use file:///path or s3://bucket/prefix")
    root: UPath = UPath(uri, **storage_options)
    return root


def is_local(path: UPath | Path) -> bool:
    """True for a path on the local file system (``file://`` or a plain path)."""
    return isinstance(path, Path) or path.protocol in ("", "file", "local")


def local_path(path: UPath | Path) -> Path:
    """The plain :class:`~pathlib.Path` of a local store path."""
    return path if isinstance(path, Path) else Path(path.path)


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and any missing parents as 0700 (``mkdir``'s mode is cut by the umask)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(path, PRIVATE_DIR_MODE)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_writer(path: UPath | Path) -> Iterator[IO[bytes]]:
    """A binary handle whose bytes appear at ``path`` whole, or not at all if the block raises."""
    if not is_local(path):
        with path.open("wb") as remote:
            yield remote
        return
    target = local_path(path)
    make_private_dirs(target.parent)
    # mkstemp: a unique name per writer (two attempts never share a temporary file), created 0600.
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes_atomic(path: UPath | Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    with atomic_writer(path) as handle:
        handle.write(data)


def copy_into(source: Path, target: UPath | Path) -> None:
    """Copy a local file into the store, whole."""
    with source.open("rb") as src, atomic_writer(target) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def write_parquet(
    table: pa.Table,
    path: UPath | Path,
    *,
    compression: str = "zstd",
    use_dictionary: bool | list[str] = True,
    write_statistics: bool = True,
) -> None:
    """Write ``table`` as one Parquet file at ``path`` (whole-file: readers never see a partial table).

    The options are pyarrow's; a large file written once and read whole (a return's classification) can
    skip compression and statistics to be written faster. The atomic, private write is the same.
    """
    with atomic_writer(path) as handle:
        pq.write_table(
            table,
            handle,
            compression=compression,
            use_dictionary=use_dictionary,
            write_statistics=write_statistics,
        )


def delete_file(path: UPath | Path, *, missing_ok: bool = False) -> None:
    """Delete exactly the file ``path`` names: literally, never as a pattern.

    ``UPath.unlink`` on S3 goes through fsspec's ``rm``, which expands ``*``, ``?`` and ``[`` as a glob, so
    a partner-chosen name such as ``dwp-return-*.csv.gpg`` would delete every return beside it. Here an
    object store deletes the one key, and a local file system unlinks the one name.
    """
    if missing_ok and not path.exists():
        return
    if isinstance(path, Path) or is_local(path):
        local_path(path).unlink(missing_ok=missing_ok)
        return
    path.fs.rm_file(path.path)


def subfolders(folder: UPath) -> list[UPath]:
    """The folders directly under ``folder``, by name (none if it does not exist)."""
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)


def read_parquet(path: UPath) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: UPath | Path, chunk_size: int = 4 << 20) -> str:
    """SHA-256 of a stored file, streamed so large deliveries never sit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def private_tempdir(prefix: str = "sf-") -> Iterator[Path]:
    """A 0700 scratch folder (``mkdtemp``), removed afterwards whatever happens."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        os.chmod(name, PRIVATE_DIR_MODE)
        yield Path(name)
