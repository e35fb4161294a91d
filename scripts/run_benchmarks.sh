#!/usr/bin/env bash
# Re-measure every CPU benchmark on a quiet machine, one after another (never in parallel: they
# share the cores). Each script checks correctness first, times ours and the reference interleaved
# in the same run, and writes its table to benchmarks/results/<date>_<machine>_<what>.md.
#   scripts/run_benchmarks.sh [build dir with the installed package, default build/site]
# About 25 minutes on 2 cores. Needs torch==2.13.0 and threadpoolctl for the references.
set -uxo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${1:-$PWD/build/site}"
blas="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"   # numpy's current OpenBLAS runs slower with them
python3 -m fastconv info
OPENBLAS_THREAD_TIMEOUT=4 $blas python3 benchmarks/bench_gemm.py --threads 1 2 --min-time 0.5 --block 5
python3 benchmarks/bench_conv.py --threads 2 --repeat 11
python3 benchmarks/bench_pool.py --threads 2
python3 benchmarks/bench_winograd.py --threads 2 --repeat 11
python3 benchmarks/bench_fft.py --threads 2 --min-time 0.3
python3 benchmarks/bench_lenet.py --threads 2 --epochs 3
