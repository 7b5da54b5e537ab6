#!/usr/bin/env bash
# Fresh machine -> .venv with detector installed and models/clips fetched (sha256-verified).
# Assets come from ../shared/assets when it exists (or $DETECTOR_ASSET_MIRROR), else upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
extras=${DETECTOR_EXTRAS:-test}  # scripts/test.sh adds ultralytics (the model loop's tests)
.venv/bin/python -m pip install --quiet -e ".[$extras]"
if [[ ",$extras," == *",ultralytics,"* ]]; then
  # Ultralytics pulls opencv-python, whose Qt build would shadow the headless one the edge runs on
  # (40 MB more per worker): the headless build goes back over it
  headless=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))')
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==$headless"
fi
mirror_args=()
[ -n "${DETECTOR_ASSET_MIRROR:-}" ] && mirror_args=(--mirror "$DETECTOR_ASSET_MIRROR")
.venv/bin/python scripts/fetch_assets.py "${mirror_args[@]}"
