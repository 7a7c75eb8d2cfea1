#!/usr/bin/env bash
# Create .venv (Python 3.11) and install guardrl with its test and docs extras.
# torch 2.13.0 (CPU) goes in first: if d3rlpy resolved torch itself, pip would pull gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip takes 15-20 s to find everything already installed; skip it when nothing it reads has changed since the
# last install that succeeded (the package is installed editable: source edits need no reinstall)
STAMP=.venv/.guardrl-installed
WANT=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ('guardrl', 'torch', 'd3rlpy'))))" 2>/dev/null; then
  exit 0
fi
rm -f "$STAMP"
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -c constraints.txt -e ".[test,docs]"
echo "$WANT" > "$STAMP"
