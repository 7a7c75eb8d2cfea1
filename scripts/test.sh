#!/usr/bin/env bash
# Install (if needed) and run ruff and the test suite (the report test drives Debian's headless chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
.venv/bin/python -m ruff check src tests bench
exec .venv/bin/python -m pytest -q "$@"
