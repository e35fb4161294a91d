#!/usr/bin/env bash
# Memory-safety check: builds fastconv with AddressSanitizer + UndefinedBehaviorSanitizer into
# build/asan-site and runs the kernel tests under them; then a small case under valgrind memcheck.
#   scripts/sanitize.sh            (about 10 minutes on 2 cores)
# Any sanitizer report fails the run (halt_on_error). Python itself is not instrumented, so the
# ASan runtime is preloaded and leak detection (which would report the interpreter's own arenas)
# is off; leaks are covered by tests/test_hardening.py::test_no_leak_over_5000_calls.
set -euo pipefail
cd "$(dirname "$0")/.."
site=$PWD/build/asan-site
python3 -m pip install --no-build-isolation --no-deps --upgrade --quiet --target "$site" \
  -Cbuild-dir=build/asan-cmake -Ccmake.build-type=RelWithDebInfo \
  -Ccmake.define.FASTCONV_CUDA=OFF -Ccmake.define.FASTCONV_SANITIZE=address,undefined . 2>&1 | grep -v "Target directory" || true

tests=(tests/test_gemm.py tests/test_conv.py tests/test_dilated_phases.py tests/test_depthwise.py tests/test_pool.py
       tests/test_nn.py tests/test_hardening.py tests/test_winograd.py tests/test_winograd_stride2.py)
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
  PYTHONPATH="$site" python3 -m pytest -q -p no:cacheprovider "${tests[@]}" \
  -k "not portable_path_in_subprocess and not no_leak and not gil_is_released"
echo "ASan/UBSan: clean"

# valgrind: the plain build on one small case of every op (valgrind and ASan do not mix).
plain=$PWD/build/site
python3 -m pip install --no-build-isolation --no-deps --upgrade --quiet --target "$plain" \
  -Cbuild-dir=build/cmake -Ccmake.define.FASTCONV_CUDA=OFF . 2>&1 | grep -v "Target directory" || true
FASTCONV_NUM_THREADS=1 PYTHONPATH="$plain" valgrind --error-exitcode=99 --errors-for-leak-kinds=none \
  --suppressions=scripts/valgrind-python.supp -q python3 scripts/small_case.py
echo "valgrind memcheck: clean"
