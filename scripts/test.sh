#!/usr/bin/env bash
# Install (if needed), then lint (ruff check and format), type-check (mypy) and run the test suite, which also builds
# the documentation site strictly (the report test drives Debian's headless chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
.venv/bin/python -m ruff check src tests bench scripts
.venv/bin/python -m ruff format --check src tests bench scripts
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q "$@"
