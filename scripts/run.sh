#!/usr/bin/env bash
# Install (if needed) and run the whole pipeline on the built-in defaults: runs/default/.
# Extra arguments go to `guardrl run` (e.g. --overwrite, --config configs/corridor.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/guardrl run "$@"
