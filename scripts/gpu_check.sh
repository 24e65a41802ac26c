#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU and no network (the lent H100/H200: torch 2.11,
# Triton 3.6, Python 3.12, nvcc 13.0, 16 cores; setuptools, ninja, pytest, hypothesis installed):
# build with the CUDA kernels for this card, run the GPU tests (CUDA C++ and Triton compiled for
# real), compute-sanitizer on a subset, the GPU benchmark, and leave everything under
# ${OUT:-gpu_results}, a summary table last. Nothing is installed from a registry.
#
#   bash scripts/gpu_check.sh            (OUT=/some/dir to choose where results go)
#
# Time budget, each step under its own timeout so the whole stays <= 10 minutes:
#   build     240 s  one arch (this card's), MAX_JOBS=16: 24 translation units, the slowest the
#                    generated lut_gemm_bits*.cu (here on 2 cores: 7 min for two archs, ~11 CPU-min)
#   tests     150 s  the cuda/triton-marked kernel tests (Triton JIT compiles ~100 configs, ~1 s each)
#   sanitizer  60 s  memcheck on three CUDA tests (refused on gVisor machines: then it says so)
#   benchmark 120 s  benchmarks/gpu_kernels.py, written after each family (lowbit, dense, conv, tiles)
#                    so a timeout keeps the families that finished
#   total    <= 570 s plus a few seconds of setup
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
start=$(date +%s)
summary=()
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUT/NAME.txt, record seconds and status
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  summary+=("$(printf '%-10s %5d s  %s' "$name" $(( $(date +%s) - t0 )) "$([ $rc -eq 0 ] && echo ok || ([ $rc -eq 124 ] && echo "TIMEOUT (${limit} s)" || echo "FAILED (exit $rc)"))")")
  tail -15 "$OUT/$name.txt"
  return $rc
}
export PYTHONUNBUFFERED=1
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
cap=$(python3 -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}.{p[1]}')")
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$cap}
export MAX_JOBS=${MAX_JOBS:-16}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
step build 240 python3 -m pip install --no-build-isolation --no-deps --no-index -e . || { printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"; exit 1; }
python3 -m torch_lowbit env | tee "$OUT/env.txt"
step tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_lut_gemm.py tests/test_tiled_gemm.py tests/test_im2win_conv.py \
  tests/test_opcheck.py tests/test_autograd.py tests/test_tile_model.py tests/test_triton_gemv.py -k "cuda or triton or tile or split or gemv"
if [ -x "$CUDA_HOME/bin/compute-sanitizer" ]; then
  step sanitizer 60 "$CUDA_HOME/bin/compute-sanitizer" --tool memcheck --error-exitcode 1 python3 -m pytest -q -x -p no:cacheprovider \
    tests/test_lut_gemm.py tests/test_tiled_gemm.py -k "cuda and (fp32_scales or large_odd or deterministic)"
fi
step benchmark 120 python3 benchmarks/gpu_kernels.py ${GPU_BENCH_ARGS:-}
cp benchmarks/results/gpu_kernels.* benchmarks/results/gpu_policy.json "$OUT/" 2>/dev/null
summary+=("$(printf '%-10s %5d s' total $(( $(date +%s) - start )))")
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
