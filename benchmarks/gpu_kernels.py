"""GPU benchmark: torch_lowbit's CUDA C++ and Triton kernels against cuBLAS/cuDNN and torch's
int4 kernel, side by side in one process. Needs a CUDA GPU.

    python benchmarks/gpu_kernels.py                # everything (a few minutes on an H100)
    python benchmarks/gpu_kernels.py --quick        # one shape per family
    python benchmarks/gpu_kernels.py --only tiles   # just the tile-model sweep

Low-bit GEMV/GEMM: (N, K) in (28672, 7168), (4096, 4096), (14336, 4096), (4096, 14336),
(8192, 8192); m in 1, 4, 16, 32, 256; bits 2, 3, 4; group 128; fp16 activations; against
F.linear fp16 (cuBLAS), torch int4 (_weight_int4pack_mm) and dequantize + matmul. Dense GEMM
1024..8192 against torch.matmul. im2win on the twelve im2win-paper layers at batch 32 against
F.conv2d (cuDNN) with and without cudnn.benchmark. CUDA-event timing, warm-up, medians; the L2
is flushed before every GEMV run. Tile model: every candidate of a fixed grid plus the model's
top 8 is timed on a few GEMMs (and a grid around the one-row GEMV's rule-based tiles), and the
predicted config's time is compared with the best measured; every timed config is written to
gpu_tile_sweep.json for benchmarks/fit_tile_forest.py. Writes benchmarks/results/
gpu_kernels.{json,md} and gpu_policy.json (the faster kernel family per op and row count, the
file torch_lowbit/dispatch.py reads from torch_lowbit/data/gpu_policy/).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import RESULTS, machine, write
from torch_lowbit.backends.triton import tile_model

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


SWEEP_GRID = [tile_model.TileConfig(bm, bn, bk, w, st) for bm, bn, bk, w, st in itertools.product((64, 128), (64, 128, 256), (32, 64), (4, 8), (3,))]
GEMV_GRID = [tile_model.TileConfig(16, bn, bk, w, st, sk) for bn, bk, w, st, sk in itertools.product((64, 128, 256), (32, 128), (4,), (2, 3), (1, 4, 16))]


def bench_tiles(quick: bool) -> list[dict]:
    """Predicted vs best measured tile config (dense fp16 GEMM and 3-bit g128 low-bit GEMM)."""
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm
    from torch_lowbit.triton_kernels.dense_gemm import dense_gemm

    spec = tile_model.spec_for_device()
    rows, sweep_rows = [], []
    dense = [(s, s, s) for s in ((4096,) if quick else (1024, 2048, 4096, 8192))]
    # the tiled low-bit kernel serves m >= 2 (one row runs the GEMV, whose tiles are set by rule)
    lowbit = [(4, 4096, 4096), (16, 28672, 7168), (256, 4096, 4096)][: 1 if quick else 3]
    cases = [("dense fp16", m, n, k, 16) for m, n, k in dense] + [("3-bit g128", m, n, k, 3) for m, n, k in lowbit]
    for kind, m, n, k, bits in cases:
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        if bits == 16:
            w = torch.randn(n, k, device="cuda", dtype=torch.float16)
            run = lambda c: dense_gemm(x, w, group_m=c.group_m, **c.kernel_args())  # noqa: E731
            grid, group = SWEEP_GRID, None
        else:
            qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=128).to("cuda")
            args = (x, *qw.op_args())
            run = lambda c: bcq_gemm(*args, split_k=c.split_k, group_m=c.group_m, **c.kernel_args())  # noqa: E731
            grid, group = (GEMV_GRID if m <= 32 else SWEEP_GRID), 128
        ranked = tile_model.rank_configs(m, n, k, spec, 2, bits, group)
        predicted = ranked[0][1]
        sweep = {c for c in grid if tile_model.feasible(c, spec, 2, bits, group)} | {c for _, c in ranked[:8]}
        measured = {}
        for cfg in sweep:
            try:
                measured[cfg] = cuda_ms(lambda: run(cfg), repeats=10, flush=m <= 32)
            except Exception as err:  # e.g. out of resources on this card
                print(f"tile {cfg} failed: {err}", file=sys.stderr)
        sweep_rows += [{"m": m, "n": n, "k": k, "weight_bits": bits, "group_size": group, "ms": t,
                        **{f: getattr(c, f) for f in ("block_m", "block_n", "block_k", "num_warps", "num_stages", "split_k", "group_m")}}
                       for c, t in measured.items()]
        best = min(measured, key=measured.get)
        order = sorted(measured, key=measured.get)
        rows.append({"family": "tiles", "shape": f"{kind} m={m} {n}x{k}", "m": m, "kernel": f"predicted {predicted}",
                     "ms": measured[predicted], "best": str(best), "best ms": measured[best], "swept": len(measured),
                     "rank": order.index(predicted) + 1, "vs best": measured[best] / measured[predicted]})
        print(f"tiles {kind} m={m} {n}x{k}: predicted/best = {measured[predicted] / measured[best]:.2f}", flush=True)
    # The one-row GEMV's tiles come from a rule (tile_model.gemv_config), not the model: sweep it too.
    from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv

    for n, k in [(28672, 7168), (4096, 4096)][: 1 if quick else 2]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=3, group_size=128).to("cuda")
        x = torch.randn(1, k, device="cuda", dtype=torch.float16)
        rule = tile_model.gemv_config(n, qw.padded_in_features, spec, 128)
        grid = {tile_model.TileConfig(1, bn, bk, w, 3, sk) for bn, bk, w, sk in itertools.product((32, 64, 128, 256), (32, 64, 128), (1, 2, 4, 8), (1, 2, 4, 8, 16))}
        measured = {}
        for cfg in grid | {rule}:
            try:
                measured[cfg] = cuda_ms(lambda: bcq_gemv(x, *qw.op_args(), cfg.block_n, cfg.block_k, cfg.split_k, cfg.num_warps), repeats=10, flush=True)
            except Exception as err:
                print(f"gemv tile {cfg} failed: {err}", file=sys.stderr)
        best = min(measured, key=measured.get)
        order = sorted(measured, key=measured.get)
        rows.append({"family": "tiles", "shape": f"3-bit g128 GEMV m=1 {n}x{k}", "m": 1, "kernel": f"rule {rule}",
                     "ms": measured[rule], "best": str(best), "best ms": measured[best], "swept": len(measured),
                     "rank": order.index(rule) + 1, "vs best": measured[best] / measured[rule]})
        print(f"tiles GEMV {n}x{k}: rule/best = {measured[rule] / measured[best]:.2f}", flush=True)
    # every timed config: what benchmarks/fit_tile_forest.py fits the tile model's correction to
    (RESULTS / "gpu_tile_sweep.json").write_text(json.dumps({"device": torch.cuda.get_device_name(), "spec": spec.name,
                                                             "rows": sweep_rows}, indent=0))
    return rows


def gpu_policy(rows: list[dict], meta: dict, command: str) -> dict:
    """The faster family (CUDA C++ "native" or "triton") per op and m, from the timings above
    (geometric mean over shapes and bit widths)."""
    times: dict = {}
    for r in rows:
        kernel = r["kernel"]
        if r["family"] == "lowbit" and "[" in kernel:
            op = "lut_gemm" if "lut_gemm" in kernel else "tiled_gemm_bcq"
        elif r["family"] == "dense" and "[" in kernel:
            op = "tiled_gemm"
        elif r["family"] == "conv" and kernel.startswith("im2win"):
            op = "im2win_conv2d"
        else:
            continue
        family = "native" if kernel.endswith("[cuda]") else "triton"
        m = r["m"] if isinstance(r["m"], int) else 32
        # bcq_linear (what patched layers call) runs either low-bit kernel: it gets both's times.
        for name in (op, "bcq_linear") if r["family"] == "lowbit" else (op,):
            times.setdefault(name, {}).setdefault(m, {}).setdefault(family, []).append(math.log(r["ms"]))
    ops = {}
    for op, by_m in times.items():
        entries = []
        for m in sorted(by_m):
            fams = {f: sum(v) / len(v) for f, v in by_m[m].items()}
            entries.append([m, min(fams, key=fams.get)])
        entries[-1][0] = 2**31  # the largest measured m decides beyond it
        ops[op] = entries
    return {"device": meta["gpu"], "measured": f"{meta['date']}, {command}", "ops": ops}


def markdown(rows, meta, command) -> str:
    out = [f"GPU kernels — {meta['gpu']}, torch {meta['torch']}, {meta['date']}", f"Command: `{command}`. Medians of CUDA-event timings; ratios >1 = faster than the baseline.", ""]
    out += ["| family | shape | m / dtype | kernel | ms | ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["family"] == "tiles":
            continue
        ratio = r.get("vs fp16", r.get("vs cuBLAS", r.get("vs cuDNN")))
        out.append(f"| {r['family']} | {r['shape']} | {r['m']} | {r['kernel']} | {r['ms']:.4f} | {ratio:.2f}x |")
    tiles = [r for r in rows if r["family"] == "tiles"]
    if tiles:
        out += ["", "Tile model: the predicted config's time against the best of the swept configs.", "",
                "| GEMM | predicted config | ms | best config | best ms | best/predicted | rank of predicted |", "|---|---|---|---|---|---|---|"]
        for r in tiles:
            out.append(f"| {r['shape']} | {r['kernel'].removeprefix('predicted ')} | {r['ms']:.4f} | {r['best']} | {r['best ms']:.4f} | {r['vs best']:.2f} | {r['rank']} of {r['swept']} |")
        within = sum(r["vs best"] >= 1 / 1.1 for r in tiles)
        out.append(f"\nPredicted within 10% of the best on {within} of {len(tiles)} GEMMs.")
    return "\n".join(out)


FAMILIES = {"lowbit": bench_lowbit, "dense": bench_dense, "conv": bench_conv, "tiles": bench_tiles}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_kernels.py needs a CUDA GPU")
    meta = machine()
    rows = []
    command = "python benchmarks/" + " ".join(["gpu_kernels.py"] + sys.argv[1:])
    for family in ("lowbit", "dense", "conv", "tiles"):
        if family in args.only:
            rows += FAMILIES[family](args.quick)
            # written after every family, so a run stopped by a time limit keeps what it measured
            md = markdown(rows, meta, command)
            write("gpu_kernels", rows, md, meta)
            (RESULTS / "gpu_policy.json").write_text(json.dumps(gpu_policy(rows, meta, command), indent=1))
            print(f"[{family} done]", flush=True)
    print(md)


if __name__ == "__main__":
    main()
