#!/usr/bin/env bash
# Build benchmarks/peers/.venv: the peers' pinned environment (datacompy, polars, DuckDB, splink,
# recordlinkage), used only by the comparison benchmarks and never by the product.
#
# Idempotent: the environment is rebuilt only when requirements.txt (or this script) changes, as
# scripts/setup.sh does for .venv, so `make bench-peers` costs nothing on a machine that has it.
# uv comes from the product's .venv (make install) unless UV names another; it resolves nothing here,
# it installs the pins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
UV=${UV:-../../.venv/bin/uv}
[ -x "$UV" ] || { echo "setup.sh: no uv at $UV: run 'make install' first" >&2; exit 1; }
STAMP=.venv/.requirements.sha256
want=$(sha256sum requirements.txt setup.sh | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "==> benchmarks/peers/.venv is up to date"
  exit 0
fi
PY=
for candidate in python3.11 /usr/bin/python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; assert sys.version_info[:2] >= (3, 11)' 2>/dev/null; then
    PY=$(command -v "$candidate"); break
  fi
done
[ -n "$PY" ] || { echo "setup.sh: need Python >= 3.11" >&2; exit 1; }
echo "==> building benchmarks/peers/.venv with $("$PY" --version) and the pinned peers"
# uv makes the environment too: it needs no python3-venv and no pip inside (nothing but uv installs here).
[ -x .venv/bin/python ] || "$UV" venv -q -p "$PY" .venv
# sync, not install: a pin removed from requirements.txt leaves the environment too.
"$UV" pip sync -q -p .venv/bin/python requirements.txt
echo "$want" >"$STAMP"
