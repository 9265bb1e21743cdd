#!/usr/bin/env bash
# Every GPU check and benchmark in one go, for a lent CUDA machine (under 8 minutes on an H200).
# Usage (from the repository root, after `make setup`):  bash benchmarks/gpu_check.sh [OUT_DIR]
# Writes tidy CSV rows and logs into OUT_DIR (default: $OUT, else benchmarks/results/gpu).
set -u
out="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$out"
py=.venv/bin/python
[ -x "$py" ] || py=python
export TRITON_INTERPRET=0   # compile the Triton kernels for the GPU instead of interpreting them
status=0
run() {  # name, timeout seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1; local rc=$?
  tail -3 "$out/$name.log"; echo "rc=$rc"; [ $rc -eq 0 ] || status=1
}
# 1. Correctness on the GPU: the fused GLU gate and the GLN walk against their references.
run kernel-tests 240 "$py" -m pytest -q -p no:cacheprovider tests/kernels \
  tests/gln/test_models.py -k "triton or engines"
# 2. Speed: the GLN walk (Triton vs torch on CUDA) and the GLU gate (eager / compile / triton).
run gln-bench 150 "$py" benchmarks/gln.py --device cuda
run glu-bench 120 "$py" benchmarks/glu.py --reps 3
cp benchmarks/results/gln-gpu.csv "$out/" 2>/dev/null
cp benchmarks/results/glu*.csv "$out/" 2>/dev/null
exit $status
