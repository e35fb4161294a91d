#!/usr/bin/env bash
# The one prepared check for a lent GPU (the device tool gives 15 minutes in all, start included):
#   1. build for sm_90 only into build/gpu-site (skipped when a build carried from the CPU machine
#      is already there: scripts/dev_build.sh-style, `--target build/gpu-site`, arch 90),
#   2. the CUDA tests (pytest -m cuda),
#   3. compute-sanitizer memcheck on a few kernels (when the tool is installed),
#   4. the GPU benchmarks against torch (benchmarks/bench_cuda.py all).
# Everything is written under $OUT (default build/gpu-out). Each stage has its own time limit, a
# failing stage does not stop the later ones, and the exit status is that of the tests.
# Usage on the device tool:  run(command="OUT=$OUT scripts/gpu_check.sh", timeout_s=560)
# If the device machine cannot build (no pybind11/scikit-build-core/nvcc there), build here first
#   python3 -m pip install --no-build-isolation --no-deps --target build/gpu-site \
#     -Cbuild-dir=build/gpu-cmake -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 .
# and pass carry=["build/gpu-site"] (same Python version on both machines).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
SITE=build/gpu-site
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/summary.txt"; }

{ nvidia-smi || true; nvcc --version || true; python3 -c "import sys, numpy; print(sys.version); print('numpy', numpy.__version__)"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" || true
} > "$OUT/env.txt" 2>&1

if ls "$SITE"/fastconv/_cuda*.so > /dev/null 2>&1; then
  log "build: using the carried $SITE"
else
  log "build: sm_90 into $SITE"
  start=$SECONDS
  timeout 300 python3 -m pip install --no-build-isolation --no-deps --upgrade --target "$SITE" \
    -Cbuild-dir=build/gpu-cmake -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 -Ccmake.define.FASTCONV_CUDA=ON . \
    > "$OUT/build.log" 2>&1
  rc=$?
  log "build: rc=$rc in $((SECONDS - start)) s"
  [ $rc -eq 0 ] || { tail -40 "$OUT/build.log"; exit 1; }
fi
export PYTHONPATH=$PWD/$SITE

PYTHONPATH=$PWD/$SITE python3 -c "import fastconv, json; print(json.dumps(fastconv.info(), indent=1))" >> "$OUT/env.txt" 2>&1

log "tests: pytest -m cuda"
start=$SECONDS
timeout 240 python3 -m pytest -q -m cuda -rs -p no:cacheprovider tests/test_cuda.py > "$OUT/pytest_cuda.txt" 2>&1
test_rc=$?
log "tests: rc=$test_rc in $((SECONDS - start)) s: $(tail -1 "$OUT/pytest_cuda.txt")"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_cuda.txt" | head -40 | tee -a "$OUT/summary.txt"

if command -v compute-sanitizer > /dev/null 2>&1; then
  log "memcheck: a small subset under compute-sanitizer"
  start=$SECONDS
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -m cuda -x -p no:cacheprovider \
    tests/test_cuda.py -k "round_trip or gemm_matches_reference or all_passes or pool2d_forward_backward or softmax or sum_mean" \
    > "$OUT/memcheck.txt" 2>&1
  log "memcheck: rc=$? in $((SECONDS - start)) s: $(grep -cE '^========= (Invalid|Program hit|Error)' "$OUT/memcheck.txt") reported errors; $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
else
  log "memcheck: compute-sanitizer not found, skipped"
fi

log "benchmarks: gemm, conv, pool against torch"
start=$SECONDS
timeout 240 python3 benchmarks/bench_cuda.py all --out "$OUT" --repeats 11 > "$OUT/bench.txt" 2>&1
log "benchmarks: rc=$? in $((SECONDS - start)) s"
grep -E "^(PASS|FAIL)" "$OUT/bench.txt" | tee -a "$OUT/summary.txt"
exit $test_rc
