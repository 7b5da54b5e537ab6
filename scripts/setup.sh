#!/usr/bin/env bash
# Fresh machine -> .venv with detector installed and models/clips fetched (sha256-verified).
# Assets come from ../shared/assets when it exists (or $DETECTOR_ASSET_MIRROR), else upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test]'
mirror_args=()
[ -n "${DETECTOR_ASSET_MIRROR:-}" ] && mirror_args=(--mirror "$DETECTOR_ASSET_MIRROR")
.venv/bin/python scripts/fetch_assets.py "${mirror_args[@]}"
