#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU and no network (e.g. the lent H100/H200):
# build with the CUDA kernels for this card, run the GPU tests, run the GPU benchmark, and
# leave everything under ${OUT:-gpu_results}. Aimed at < 8 minutes.
#   bash scripts/gpu_check.sh            (OUT=/some/dir to choose where results go)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
start=$(date +%s)
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
cap=$(python -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}.{p[1]}')")
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$cap}
export MAX_JOBS=${MAX_JOBS:-16}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
{ time pip install --no-build-isolation --no-deps -e . ; } > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -50 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
python -m torch_lowbit env | tee "$OUT/env.txt"
# The kernel tests on the GPU: the cuda-marked ones plus Triton compiled for real (no interpreter).
timeout 240 python -m pytest -q tests/test_lut_gemm.py tests/test_tiled_gemm.py tests/test_im2win_conv.py \
  tests/test_opcheck.py tests/test_autograd.py tests/test_tile_model.py -k "cuda or triton or tile or split" 2>&1 \
  | tee "$OUT/pytest_gpu.txt" | tail -20
if command -v compute-sanitizer > /dev/null || [ -x "$CUDA_HOME/bin/compute-sanitizer" ]; then
  timeout 120 "$CUDA_HOME/bin/compute-sanitizer" --tool memcheck python -m pytest -q -x tests/test_lut_gemm.py tests/test_tiled_gemm.py \
    -k "cuda and (fp32_scales or large_odd or deterministic)" \
    > "$OUT/sanitizer.txt" 2>&1; tail -3 "$OUT/sanitizer.txt"
fi
echo "tests: $(( $(date +%s) - start )) s"
timeout 300 python benchmarks/gpu_kernels.py ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu_kernels.txt" | tail -80
cp benchmarks/results/gpu_kernels.* benchmarks/results/gpu_policy.json "$OUT/" 2>/dev/null
echo "total: $(( $(date +%s) - start )) s"
