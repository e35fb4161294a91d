#!/usr/bin/env bash
# Build fastconv._cuda against the CPU stand-in for the CUDA runtime (scripts/cuda_emu/cuda_runtime.h)
# into build/emu-site, a copy of build/site, then run the CUDA tests on it:
#   scripts/dev_build.sh && scripts/cuda_emu/build.sh && PYTHONPATH=$PWD/build/emu-site python3 -m pytest -q -m cuda tests
# This checks the CUDA code's indexing, bounds, barriers and results without a GPU (AddressSanitizer
# on by default: FASTCONV_EMU_SANITIZE= turns it off). It does not replace a run on a real GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
test -d build/site/fastconv || { echo "run scripts/dev_build.sh first" >&2; exit 1; }
rm -rf build/emu-site && cp -r build/site build/emu-site
rm -f build/emu-site/fastconv/_cuda*.so
SAN=${FASTCONV_EMU_SANITIZE-address,undefined}
ext=$(python3 -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
g++ -std=c++20 -O1 -g -fPIC -shared -pthread ${SAN:+-fsanitize=$SAN -fno-omit-frame-pointer} \
  -Iscripts/cuda_emu -Icuda -Icsrc $(python3 -m pybind11 --includes) \
  -x c++ cuda/*.cu -x none cuda/bindings/*.cpp -o "build/emu-site/fastconv/_cuda$ext"
echo "built build/emu-site/fastconv/_cuda$ext"
