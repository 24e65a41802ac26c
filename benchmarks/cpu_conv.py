"""CPU convolution benchmark: torch_lowbit's im2win conv (float and 4-bit g32 weights) against
torch's F.conv2d (oneDNN) in NCHW and channels_last and explicit im2col + GEMM, in one process.

    python benchmarks/cpu_conv.py --threads 2

Layers: the twelve of the im2win paper (C, HxW, K, RxS, stride; padding 0) and ResNet-50's
3x3 stages (padding 1) plus a 1x1 layer, at batch 1 and 8. Times include our window transform.
Writes benchmarks/results/cpu_conv_<machine>[_quick][_<tag>].{json,md}; `--isa avx2` forces our kernels onto the AVX2 path
(with `ONEDNN_MAX_CPU_ISA=AVX2` in the environment oneDNN is held to AVX2 as well: what an AVX2-only CPU runs).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import machine, machine_tag, median_ms, write

# (name, C, H(=W), K, R(=S), stride, padding)
PAPER = [
    ("conv1", 3, 227, 96, 11, 4, 0), ("conv2", 3, 231, 96, 11, 4, 0), ("conv3", 3, 227, 64, 7, 2, 0),
    ("conv4", 64, 224, 64, 7, 2, 0), ("conv5", 96, 24, 256, 5, 1, 0), ("conv6", 256, 12, 512, 3, 1, 0),
    ("conv7", 3, 224, 64, 3, 1, 0), ("conv8", 64, 112, 128, 3, 1, 0), ("conv9", 64, 56, 64, 3, 1, 0),
    ("conv10", 128, 28, 128, 3, 1, 0), ("conv11", 256, 14, 256, 3, 1, 0), ("conv12", 512, 7, 512, 3, 1, 0),
]
RESNET = [
    ("res2 3x3", 64, 56, 64, 3, 1, 1), ("res3 3x3", 128, 28, 128, 3, 1, 1), ("res4 3x3", 256, 14, 256, 3, 1, 1),
    ("res5 3x3", 512, 7, 512, 3, 1, 1), ("res3 1x1", 512, 28, 128, 1, 1, 0),
]


def im2col_gemm(x, w, stride, padding):
    n, c, h, wd = x.shape
    o, _, r, s = w.shape
    cols = F.unfold(x, (r, s), padding=padding, stride=stride)  # [N, C*R*S, L]
    oh = (h + 2 * padding - r) // stride + 1
    ow = (wd + 2 * padding - s) // stride + 1
    return (w.reshape(o, -1) @ cols).reshape(n, o, oh, ow)


def workspace_bytes(n, c, h, k, r, stride, padding, threads):
    """Floats of scratch each method materialises, in bytes: im2col's column matrix against our
    window buffer (N x OH x Wwin x R x C), or, where the CPU driver runs its fused schedule
    (window past 1 MiB, all filter strips within 4 MiB: csrc/cpu/im2win_conv/im2win_driver.cpp),
    each thread's window rows of one block of output rows and that block's output."""
    oh = (h + 2 * padding - r) // stride + 1
    wwin = (oh - 1) * stride + r
    window = n * oh * wwin * r * c * 4
    strips = r * r * c * -(-k // 32) * 32 * 4
    if window >= 2**20 and strips <= 4 * 2**20 and n * oh >= 2 * threads:
        block_rows = min(max(1, (256 << 10) // (wwin * r * c * 4)), -(-n * oh // (2 * threads)))
        window = threads * block_rows * (wwin * r * c + oh * k) * 4
    return n * c * r * r * oh * oh * 4, window


def run(layers, batches, quick: bool) -> list[dict]:
    rows = []
    for batch in batches:
        for name, c, h, k, r, stride, padding in layers:
            x = torch.randn(batch, c, h, h)
            xcl = x.contiguous(memory_format=torch.channels_last)
            w = torch.randn(k, c, r, r)
            qw = torch_lowbit.quantize_weight(w, bits=4, group_size=32)
            flops = 2 * batch * k * c * r * r * ((h + 2 * padding - r) // stride + 1) ** 2
            kw = dict(stride=stride, padding=padding)
            times = {
                "F.conv2d NCHW": median_ms(lambda: F.conv2d(x, w, **kw), budget_s=0.5),
                "F.conv2d channels_last": median_ms(lambda: F.conv2d(xcl, w, **kw), budget_s=0.5),
                "im2col + GEMM": median_ms(lambda: im2col_gemm(x, w, stride, padding), budget_s=0.5),
                "im2win fp32": median_ms(lambda: torch_lowbit.ops.im2win_conv2d(x, w, **kw), budget_s=0.5),
                "im2win 4-bit g32": median_ms(lambda: torch_lowbit.ops.im2win_conv2d(x, qw, **kw), budget_s=0.5),
            }
            col_ws, win_ws = workspace_bytes(batch, c, h, k, r, stride, padding, torch.get_num_threads())
            for kernel, t in times.items():
                rows.append({
                    "layer": name, "batch": batch, "kernel": kernel, "ms": t, "GFLOP/s": flops / (t * 1e-3) / 1e9,
                    "vs oneDNN": times["F.conv2d NCHW"] / t, "vs im2col": times["im2col + GEMM"] / t,
                    "workspace": win_ws if kernel.startswith("im2win") else col_ws if kernel == "im2col + GEMM" else None,
                    "weight_bytes": qw.nbytes if "bit" in kernel else w.numel() * 4,
                })
            print(f"done {name} batch {batch}", flush=True)
    return rows


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def _vs_best_onednn(rows, row) -> float:
    onednn = [r["ms"] for r in rows if r["layer"] == row["layer"] and r["batch"] == row["batch"] and r["kernel"].startswith("F.conv2d")]
    return min(onednn) / row["ms"]


def markdown(rows, meta, command) -> str:
    out = [
        f"CPU conv benchmark — {meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, ISA {meta['cpu_isa']}, {meta['date']}",
        f"Command: `{command}`. Medians; ratios are speedups over the baseline in the same run (>1 = faster).",
        *([f"oneDNN limited to ISA {os.environ['ONEDNN_MAX_CPU_ISA']} (ONEDNN_MAX_CPU_ISA)."] if os.environ.get("ONEDNN_MAX_CPU_ISA") else []),
        "",
    ]
    for batch in sorted({r["batch"] for r in rows}):
        res = [r for r in rows if r["batch"] == batch and r["layer"].endswith("3x3") and r["layer"].startswith("res")]
        if res:
            out.append(
                f"Batch {batch}, ResNet-50 3x3 stages, geometric mean: im2win fp32 {geomean(r['vs oneDNN'] for r in res if r['kernel'] == 'im2win fp32'):.2f}x oneDNN, "
                f"{geomean(_vs_best_onednn(rows, r) for r in res if r['kernel'] == 'im2win fp32'):.2f}x the faster oneDNN layout (NCHW or channels_last), "
                f"{geomean(r['vs im2col'] for r in res if r['kernel'] == 'im2win fp32'):.2f}x im2col+GEMM; "
                f"4-bit g32 at {geomean(r2['ms'] / r['ms'] for r in res for r2 in res if r['kernel'] == 'im2win fp32' and r2['kernel'] == 'im2win 4-bit g32' and r2['layer'] == r['layer']):.2f}x the time of fp32 im2win"
            )
            out.append("")
    out += ["| layer | batch | kernel | ms | GFLOP/s | vs oneDNN NCHW | vs im2col+GEMM | workspace MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ws = f"{r['workspace'] / 2**20:.1f}" if r["workspace"] else "-"
        out.append(f"| {r['layer']} | {r['batch']} | {r['kernel']} | {r['ms']:.2f} | {r['GFLOP/s']:.1f} | {r['vs oneDNN']:.2f}x | {r['vs im2col']:.2f}x | {ws} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="ResNet-50 layers at batch 1 only")
    ap.add_argument("--isa", help="force a CPU SIMD path for our kernels (portable, avx2, avx512, amx): e.g. avx2 on an AVX-512 machine")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.isa:
        from torch_lowbit.backends import native

        native.set_cpu_isa(args.isa)
    meta = machine()
    layers = RESNET if args.quick else PAPER + RESNET
    rows = run(layers, [1] if args.quick else [1, 8], args.quick)
    command = "python benchmarks/" + " ".join(["cpu_conv.py"] + sys.argv[1:])
    md = markdown(rows, meta, command)
    name = f"cpu_conv_{machine_tag()}" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    write(name, rows, md, meta)
    print(md)


if __name__ == "__main__":
    main()
