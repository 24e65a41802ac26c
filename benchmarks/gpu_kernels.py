"""GPU benchmark: torch_lowbit's CUDA C++ and Triton kernels against cuBLAS/cuDNN and torch's
int4 kernel, side by side in one process. Needs a CUDA GPU.

    python benchmarks/gpu_kernels.py            # everything (a few minutes on an H100)
    python benchmarks/gpu_kernels.py --quick    # one shape per family

Low-bit GEMV/GEMM: (N, K) in (28672, 7168), (4096, 4096), (14336, 4096), (4096, 14336),
(8192, 8192); m in 1, 4, 16, 32, 256; bits 2, 3, 4; group 128; fp16 activations; against
F.linear fp16 (cuBLAS), torch int4 (_weight_int4pack_mm) and dequantize + matmul. Dense GEMM
1024..8192 against torch.matmul. im2win on the twelve im2win-paper layers at batch 32 against
F.conv2d (cuDNN) with and without cudnn.benchmark. CUDA-event timing, warm-up, medians; the L2
is flushed before every GEMV run. Writes benchmarks/results/gpu_kernels.{json,md}.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import machine, write

GEMV_SHAPES = [(28672, 7168), (4096, 4096), (14336, 4096), (4096, 14336), (8192, 8192)]
PAPER = [
    (3, 227, 96, 11, 4), (3, 231, 96, 11, 4), (3, 227, 64, 7, 2), (64, 224, 64, 7, 2), (96, 24, 256, 5, 1), (256, 12, 512, 3, 1),
    (3, 224, 64, 3, 1), (64, 112, 128, 3, 1), (64, 56, 64, 3, 1), (128, 28, 128, 3, 1), (256, 14, 256, 3, 1), (512, 7, 512, 3, 1),
]
_flush = None


def flush_l2():
    global _flush
    if _flush is None:
        _flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    _flush.zero_()


def cuda_ms(fn, repeats: int = 20, flush: bool = False) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if flush:
            flush_l2()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def int4_weight(w: torch.Tensor, group: int = 128):
    n, k = w.shape
    g = w.float().reshape(n, k // group, group)
    low, high = g.amin(-1), g.amax(-1)
    scale = ((high - low) / 15).clamp_min(1e-8)
    q = ((g - low.unsqueeze(-1)) / scale.unsqueeze(-1)).round().clamp(0, 15).to(torch.int32).reshape(n, k)
    # two 4-bit codes per byte, the even k in the high nibble (tinygemm's layout)
    packed = torch.ops.aten._convert_weight_to_int4pack(((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8), 8)
    sz = torch.stack([scale, low + 8 * scale], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
    return packed, sz


def bench_lowbit(quick: bool) -> list[dict]:
    rows = []
    shapes = GEMV_SHAPES[:1] if quick else GEMV_SHAPES
    for n, k in shapes:
        w = torch.randn(n, k, device="cuda", dtype=torch.float16)
        try:
            int4 = int4_weight(w)
        except Exception as err:  # the packing API moves between torch releases
            print(f"torch int4 baseline unavailable: {err}", file=sys.stderr)
            int4 = None
        qws = {b: torch_lowbit.quantize_weight(w.float(), bits=b, group_size=128).to("cuda") for b in ((3,) if quick else (2, 3, 4))}
        for m in ((1, 16) if quick else (1, 4, 16, 32, 256)):
            x = torch.randn(m, k, device="cuda", dtype=torch.float16)
            flush = m <= 32
            base = cuda_ms(lambda: F.linear(x, w), flush=flush)
            entries = {"fp16 F.linear (cuBLAS)": (base, n * k * 2)}
            if int4 is not None:
                xb = x.bfloat16()
                entries["torch int4 (g128)"] = (cuda_ms(lambda: torch.ops.aten._weight_int4pack_mm(xb, int4[0], 128, int4[1]), flush=flush), n * k // 2)
            for b, qw in qws.items():
                for backend in ("cuda", "triton"):
                    for op in ("lut_gemm", "tiled_gemm"):
                        fn = getattr(torch_lowbit.ops, op)
                        try:
                            t = cuda_ms(lambda: fn(x, qw, backend=backend), flush=flush)
                        except Exception as err:
                            print(f"{backend} {op} failed: {err}", file=sys.stderr)
                            continue
                        entries[f"{b}-bit {op} [{backend}]"] = (t, qw.nbytes)
                if b == 3:
                    entries["3-bit dequantize + matmul"] = (cuda_ms(lambda: F.linear(x, qw.dequantize(torch.float16)), flush=flush), qw.nbytes)
            for name, (t, nbytes) in entries.items():
                rows.append({"family": "lowbit", "shape": f"{n}x{k}", "m": m, "kernel": name, "ms": t, "GB/s": nbytes / (t * 1e-3) / 1e9, "vs fp16": base / t})
            print(f"done {n}x{k} m={m}", flush=True)
    return rows


def bench_dense(quick: bool) -> list[dict]:
    rows = []
    for size in ((4096,) if quick else (1024, 2048, 4096, 8192)):
        a = torch.randn(size, size, device="cuda", dtype=torch.float16)
        b = torch.randn(size, size, device="cuda", dtype=torch.float16)
        base = cuda_ms(lambda: a @ b.T)
        for backend in ("triton", "cuda"):
            try:
                t = cuda_ms(lambda: torch_lowbit.ops.tiled_gemm(a, b, backend=backend))
            except Exception as err:
                print(f"dense {backend} failed: {err}", file=sys.stderr)
                continue
            rows.append({"family": "dense", "shape": f"{size}^3", "m": size, "kernel": f"tiled_gemm fp16 [{backend}]", "ms": t, "TFLOP/s": 2 * size**3 / (t * 1e-3) / 1e12, "vs cuBLAS": base / t})
        rows.append({"family": "dense", "shape": f"{size}^3", "m": size, "kernel": "torch.matmul (cuBLAS)", "ms": base, "TFLOP/s": 2 * size**3 / (base * 1e-3) / 1e12, "vs cuBLAS": 1.0})
    return rows


def bench_conv(quick: bool) -> list[dict]:
    rows = []
    for c, h, k, r, stride in (PAPER[-4:-3] if quick else PAPER):
        for dtype in (torch.float32, torch.float16):
            x = torch.randn(32, c, h, h, device="cuda", dtype=dtype)
            w = torch.randn(k, c, r, r, device="cuda", dtype=dtype)
            torch.backends.cudnn.benchmark = False
            base = cuda_ms(lambda: F.conv2d(x, w, stride=stride))
            torch.backends.cudnn.benchmark = True
            tuned = cuda_ms(lambda: F.conv2d(x, w, stride=stride))
            torch.backends.cudnn.benchmark = False
            entries = {"cuDNN": base, "cuDNN (benchmark=True)": tuned}
            for backend in ("cuda", "triton"):
                try:
                    entries[f"im2win [{backend}]"] = cuda_ms(lambda: torch_lowbit.ops.im2win_conv2d(x, w, stride=stride, backend=backend))
                except Exception as err:
                    print(f"im2win {backend} failed: {err}", file=sys.stderr)
            for name, t in entries.items():
                rows.append({"family": "conv", "shape": f"C{c} {h}x{h} K{k} {r}x{r}/s{stride}", "m": str(dtype).removeprefix("torch."), "kernel": name, "ms": t, "vs cuDNN": base / t})
    return rows


def markdown(rows, meta, command) -> str:
    out = [f"GPU kernels — {meta['gpu']}, torch {meta['torch']}, {meta['date']}", f"Command: `{command}`. Medians of CUDA-event timings; ratios >1 = faster than the baseline.", ""]
    out += ["| family | shape | m / dtype | kernel | ms | ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r.get("vs fp16", r.get("vs cuBLAS", r.get("vs cuDNN")))
        out.append(f"| {r['family']} | {r['shape']} | {r['m']} | {r['kernel']} | {r['ms']:.4f} | {ratio:.2f}x |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_kernels.py needs a CUDA GPU")
    meta = machine()
    rows = bench_lowbit(args.quick) + bench_dense(args.quick) + bench_conv(args.quick)
    command = "python benchmarks/" + " ".join(["gpu_kernels.py"] + sys.argv[1:])
    md = markdown(rows, meta, command)
    write("gpu_kernels", rows, md, meta)
    print(md)


if __name__ == "__main__":
    main()
