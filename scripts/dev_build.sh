#!/usr/bin/env bash
# Incremental developer build into build/site (no virtualenv needed):
#   scripts/dev_build.sh [extra pip -C options]   then   PYTHONPATH=build/site python -m pytest
# CUDA can be skipped for speed with: scripts/dev_build.sh -Ccmake.define.FASTCONV_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --no-build-isolation --no-deps --upgrade --quiet \
  --target build/site -Cbuild-dir=build/cmake "$@" . 2>&1 | grep -v "Target directory" || true
test -f build/site/fastconv/__init__.py
