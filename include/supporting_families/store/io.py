"""One base URI for everything the platform stores.

``file://`` inside the project by default, ``s3://`` in production. The core works on
:class:`upath.UPath` objects; Airflow's ``ObjectStoragePath`` is a subclass, so DAG tasks pass theirs
straight in, and the tests drive the same functions against a local directory and an S3 server.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

DEFAULT_STORE_ENV = "SF_STORE_URI"


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


def write_bytes_atomic(path: UPath, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part.

    On a local file system we write a sibling temporary file and rename it; object stores already make a
    PUT visible only once it is complete.
    """
    if path.protocol in ("", "file", "local"):
        tmp = path.with_name(f".{path.name}.partial")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp.path, path.path)
    else:
        with path.open("wb") as fh:
            fh.write(data)


def write_parquet(table: pa.Table, path: UPath) -> None:
    """Write ``table`` as one Parquet file at ``path`` (whole-file: readers never see a partial table)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes_atomic(path, sink.getvalue().to_pybytes())


def read_parquet(path: UPath) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh)


def sha256_of(path: UPath, chunk_size: int = 4 << 20) -> str:
    """SHA-256 of a stored file, streamed so large deliveries never sit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
