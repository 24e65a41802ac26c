"""CPU GEMV/GEMM benchmark: torch_lowbit's LUT-GEMM and tiled GEMM against torch's own kernels,
side by side in one process.

    python benchmarks/cpu_gemm.py --threads 2            # the issue's full grid
    python benchmarks/cpu_gemm.py --threads 2 --quick    # (11008, 4096), m 1/16/256, 3-bit

Baselines: F.linear fp32 and bf16, torch's int4 CPU kernel (_weight_int4pack_mm_for_cpu, group
128) and int8 weight-only kernel (_weight_int8pack_mm), both fed bf16 activations (their fast
path: with fp32 activations they are 20-30x slower here), and dequantize-then-F.linear. Ours
runs with fp32 activations ("auto") and with bf16 ones ("auto (bf16 x)", AMX tiles where the CPU
has them).
When the optional llama-cpp-python package is installed (`pip install llama-cpp-python`, which
compiles llama.cpp, ~8 min here), llama.cpp's Q4_0 matmul runs too, through its bundled ggml
(llama_cpp_baseline.py), with the weight in each CPU buffer llama.cpp offers: plain, CPU_REPACK
and AMX (the AMX buffer at m = 1 only: at m > 1 its tile path segfaults when called this way).
--cold rotates through copies of each weight totalling more than the last-level cache (300 MB
here) so weights come from DRAM.
Writes benchmarks/results/cpu_gemm.{json,md} and a plot cpu_gemm.png when matplotlib is present.
"""
from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

import llama_cpp_baseline
import torch_lowbit
from harness import machine, machine_tag, median_ms, write
from torch_lowbit.backends import native

SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008), (14336, 4096), (28672, 8192)]
LLC_BYTES = 300 * 2**20


def int4_pack(w: torch.Tensor, group: int = 128):
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low, high = g.amin(-1), g.amax(-1)
    scale = ((high - low) / 15).clamp_min(1e-8)
    q = ((g - low.unsqueeze(-1)) / scale.unsqueeze(-1)).round().clamp(0, 15).to(torch.int32).reshape(n, k)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
    # torch's int4 weight: (q - 8) * scale + zero, so zero = low + 8 * scale
    sz = torch.stack([scale, low + 8 * scale], dim=-1).transpose(0, 1).contiguous()
    return packed, sz


def rotating(make_copy, nbytes: int, cold: bool):
    """Copies of a weight to rotate through: one when hot, enough to exceed the LLC when cold."""
    count = max(2, math.ceil(2 * LLC_BYTES / max(nbytes, 1))) if cold else 1
    return [make_copy() for _ in range(count)]


def llama_layers(w: torch.Tensor, cold: bool) -> dict[str, list]:
    """llama.cpp Q4_0 copies of w per weight buffer, {} when llama-cpp-python is not installed."""
    if not llama_cpp_baseline.available():
        return {}
    threads = torch.get_num_threads()
    nbytes = w.numel() * 9 // 16  # Q4_0: 18 bytes per 32 weights
    layers = {buf: rotating(lambda buf=buf: llama_cpp_baseline.GgmlQ4Linear(w, buf, threads), nbytes, cold)
              for buf in llama_cpp_baseline.buffer_types()}
    # Guard the ctypes wiring: Q4_0 with int8 activations lands ~9% from fp32 on Gaussian weights.
    x = torch.randn(1, w.shape[1])
    ref = F.linear(x, w)
    for buf, copies in layers.items():
        err = ((copies[0](x) - ref).norm() / ref.norm()).item()
        if err > 0.2:
            raise RuntimeError(f"llama.cpp {buf}: relative error {err:.3f} against fp32, expected < 0.2")
    return layers


def exact_tables(fn):
    """Run fn with the exact fp32 LUT tables (the int8 ones are the default)."""
    before = native.cpu_lut_tables()
    native.set_cpu_lut_tables("exact")
    try:
        return fn()
    finally:
        native.set_cpu_lut_tables(before)


def bench_shape(n: int, k: int, ms: list[int], bits_list: list[int], cold: bool, quick: bool) -> list[dict]:
    w = torch.randn(n, k)
    rows = []
    state = {"i": 0}

    def pick(copies):
        return copies[state["i"] % len(copies)]

    def step(i):
        state["i"] = i + 1

    fp32_w = rotating(lambda: w.clone(), w.numel() * 4, cold)
    bf16_w = rotating(lambda: w.bfloat16(), w.numel() * 2, cold)
    int8_q = (w / (w.abs().amax(1, keepdim=True) / 127)).round().to(torch.int8)
    int8_s = (w.abs().amax(1) / 127).bfloat16().contiguous()
    int8_w = rotating(lambda: int8_q.clone(), int8_q.numel(), cold)
    int4 = rotating(lambda: tuple(t.bfloat16() if t.is_floating_point() else t for t in int4_pack(w)), n * k // 2, cold)
    llama = llama_layers(w, cold)
    qws = {b: rotating(lambda b=b: torch_lowbit.quantize_weight(w, bits=b, group_size=128), torch_lowbit.quantize_weight(w[:16], bits=b).nbytes * n // 16, cold) for b in bits_list}
    for m in ms:
        x = torch.randn(m, k)
        xb = x.bfloat16()
        base = {
            "fp32 F.linear": (median_ms(lambda: F.linear(x, pick(fp32_w)), setup=step), n * k * 4),
            "bf16 F.linear": (median_ms(lambda: F.linear(xb, pick(bf16_w)), setup=step), n * k * 2),
            "torch int4 (g128)": (median_ms(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(xb, pick(int4)[0], 128, pick(int4)[1]), setup=step), n * k // 2),
            "torch int8": (median_ms(lambda: torch.ops.aten._weight_int8pack_mm(xb, pick(int8_w), int8_s), setup=step), n * k),
        }
        for buf, layers in llama.items():
            if buf == "amx" and m > 1:
                continue
            base[f"llama.cpp Q4_0 ({buf})"] = (median_ms(lambda: pick(layers)(x), setup=step), layers[0].nbytes)
        for name, (t, nbytes) in base.items():
            rows.append({"N": n, "K": k, "m": m, "bits": None, "kernel": name, "ms": t, "weight_bytes": nbytes})
        for b in bits_list:
            qw0 = qws[b][0]
            ours = {f"torch_lowbit {b}-bit auto": lambda: torch_lowbit.ops.linear(x, pick(qws[b])),
                    # bf16 activations: the AMX tiled kernel where the CPU has AMX (vs bf16 F.linear)
                    f"torch_lowbit {b}-bit auto (bf16 x)": lambda: torch_lowbit.ops.linear(xb, pick(qws[b]))}
            if not quick:
                ours[f"torch_lowbit {b}-bit lut_gemm"] = lambda: torch_lowbit.ops.lut_gemm(x, pick(qws[b]))
                ours[f"torch_lowbit {b}-bit lut_gemm exact"] = lambda: exact_tables(lambda: torch_lowbit.ops.lut_gemm(x, pick(qws[b])))
                ours[f"torch_lowbit {b}-bit tiled_gemm"] = lambda: torch_lowbit.ops.tiled_gemm(x, pick(qws[b]))
            if b == 3 and not cold:
                ours["3-bit dequantize + F.linear"] = lambda: F.linear(x, qw0.dequantize())
            for name, fn in ours.items():
                rows.append({"N": n, "K": k, "m": m, "bits": b, "kernel": name, "ms": median_ms(fn, setup=step), "weight_bytes": qw0.nbytes})
    for r in rows:
        r["GB/s"] = r["weight_bytes"] / (r["ms"] * 1e-3) / 1e9
        same = [o for o in rows if o["N"] == n and o["m"] == r["m"]]
        r["vs fp32"] = next(o["ms"] for o in same if o["kernel"] == "fp32 F.linear") / r["ms"]
        r["vs bf16"] = next(o["ms"] for o in same if o["kernel"] == "bf16 F.linear") / r["ms"]
        r["vs int4"] = next(o["ms"] for o in same if o["kernel"] == "torch int4 (g128)") / r["ms"]
        best_llama = min((o["ms"] for o in same if o["kernel"].startswith("llama.cpp")), default=None)
        r["vs llama.cpp"] = best_llama / r["ms"] if best_llama else None
    return rows


def markdown(rows: list[dict], meta: dict, command: str) -> str:
    out = [
        f"CPU GEMM benchmark — {meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, ISA {meta['cpu_isa']}, LUT tables {meta['cpu_lut_tables']}, {meta['date']}",
        f"Command: `{command}`. Times are medians; ratios are speedups over the baseline in the same run (>1 = faster).",
        "",
        "| N x K | m | kernel | ms | weight GB/s | vs fp32 | vs bf16 | vs torch int4 | vs best llama.cpp |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        llama = f"{r['vs llama.cpp']:.2f}x" if r.get("vs llama.cpp") else "-"
        out.append(f"| {r['N']}x{r['K']} | {r['m']} | {r['kernel']} | {r['ms']:.3f} | {r['GB/s']:.1f} | {r['vs fp32']:.2f}x | {r['vs bf16']:.2f}x | {r['vs int4']:.2f}x | {llama} |")
    return "\n".join(out)


def plot(rows: list[dict], path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    shapes = sorted({(r["N"], r["K"]) for r in rows})
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 4), squeeze=False)
    for ax, (n, k) in zip(axes[0], shapes):
        for kernel in sorted({r["kernel"] for r in rows if r["N"] == n and r["K"] == k}):
            pts = sorted((r["m"], r["vs fp32"]) for r in rows if r["N"] == n and r["K"] == k and r["kernel"] == kernel)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=kernel)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{n} x {k}")
        ax.set_xlabel("m (activation rows)")
        ax.set_ylabel("speedup over fp32 F.linear")
        ax.axhline(1.0, color="gray", lw=0.5)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", help="force a CPU SIMD path (portable, avx2, avx512, amx): e.g. avx2 on an AVX-512 machine")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the result file name (keeps partial runs apart from the full grid)")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--m", type=int, nargs="+")
    ap.add_argument("--bits", type=int, nargs="+")
    ap.add_argument("--shapes", nargs="+", help="NxK, e.g. 11008x4096")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.isa:
        native.set_cpu_isa(args.isa)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes] if args.shapes else ([(11008, 4096)] if args.quick else SHAPES)
    ms = args.m or ([1, 16, 256] if args.quick else [1, 4, 16, 64, 256])
    bits = args.bits or ([3] if args.quick else [2, 3, 4, 8])
    meta = machine()
    rows = []
    for n, k in shapes:
        rows += bench_shape(n, k, ms, bits, args.cold, args.quick)
        print(f"done {n}x{k}", flush=True)
    command = "python benchmarks/" + " ".join(["cpu_gemm.py"] + sys.argv[1:])
    md = markdown(rows, meta, command)
    name = "cpu_gemm" + ("_cold" if args.cold else "") + ("_quick" if args.quick else "") + "_" + machine_tag() + (f"_{args.tag}" if args.tag else "")
    out = write(name, rows, md, meta)
    plot(rows, out / f"{name}.png")
    print(md)


if __name__ == "__main__":
    main()
