"""Which CPU kernel wins at many rows: torch_lowbit.ops.lut_gemm, the int8-activation GEMM
(ops.linear with it on: what csrc/cpu/kernel_selector.h runs for uniform grids from
kInt8GemmMinRows rows), ops.linear with it off (the LUT or the weight expanded in blocks and
multiplied by ATen's sgemm, as the selector picks without it) and F.linear fp32 on the dense
weight, in one process. The numbers behind kernel_selector.h's row ranges.

    python benchmarks/lut_crossover.py --threads 2
    python benchmarks/lut_crossover.py --threads 2 --isa avx2 --tag forced-avx2   # the AVX2 kernels
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import cpu_name, machine, machine_tag, median_ms, write
from torch_lowbit.backends import native


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", nargs="+", default=["11008x4096", "4096x4096", "1536x384", "384x1536"])
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32, 64, 128, 256, 1536])
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--isa", help="force a CPU SIMD path, e.g. avx2 on an AVX-512 machine")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.isa:
        native.set_cpu_isa(args.isa)
    info = torch_lowbit.build_info()
    rows = []

    def time_linear(x, qw, int8_gemm: bool) -> tuple[float, str]:
        native.set_cpu_int8_gemm(int8_gemm)
        try:
            kernel = native.cpu_linear_kernel(x.shape[0], qw.bits, *qw.shape)
            return median_ms(lambda: torch_lowbit.ops.linear(x, qw, None, backend="cpu"), max_repeats=15), kernel
        finally:
            native.set_cpu_int8_gemm(True)

    for shape in args.shapes:
        n, k = map(int, shape.split("x"))
        w = torch.randn(n, k)
        for bits in args.bits:
            qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=128)  # mse: a uniform grid
            for m in args.m:
                if n * k >= 4096 * 4096 and m > 256:
                    continue  # minutes of fp32 GEMM on 2 cores; the trend is set by m = 256
                x = torch.randn(m, k)
                lut = median_ms(lambda: torch_lowbit.ops.lut_gemm(x, qw, backend="cpu"), max_repeats=15)
                int8, int8_kernel = time_linear(x, qw, True)
                other, other_kernel = time_linear(x, qw, False)
                dense = median_ms(lambda: F.linear(x, w), max_repeats=15)
                rows.append({"shape": shape, "bits": bits, "m": m, "lut_ms": lut, "int8_ms": int8, "int8_kernel": int8_kernel,
                             "without_ms": other, "without_kernel": other_kernel, "fp32_ms": dense})
                print(f"{shape} {bits}-bit m={m}: lut {lut:.2f} ms, auto {int8:.2f} ({int8_kernel}), without int8 gemm {other:.2f} "
                      f"({other_kernel}), F.linear fp32 {dense:.2f}", flush=True)
    isa = native.cpu_isa()
    command = "python benchmarks/lut_crossover.py " + " ".join(a for a in [f"--threads {args.threads}", f"--isa {args.isa}" if args.isa else "",
                                                                     f"--tag {args.tag}" if args.tag else ""] if a)
    head = (f"Many-row kernels — {cpu_name()}, {args.threads} threads, ISA {isa}, int8 lookup {info['cpu_lut_lookup']}, "
            f"torch {torch.__version__}\n\n"
            f"Command: `{command}`. Medians; mse (uniform) weights, g128. auto: ops.linear as the selector runs it (the int8 GEMM "
            "where it applies); without: the same with the int8 GEMM off. Ratios < 1: the first is faster.\n\n"
            "| N x K | bits | m | lut_gemm ms | auto ms (kernel) | without ms (kernel) | F.linear fp32 ms | auto / LUT | auto / without |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['shape']} | {r['bits']} | {r['m']} | {r['lut_ms']:.2f} | {r['int8_ms']:.2f} ({r['int8_kernel']}) | "
                   f"{r['without_ms']:.2f} ({r['without_kernel']}) | {r['fp32_ms']:.2f} | {r['int8_ms'] / r['lut_ms']:.2f} | "
                   f"{r['int8_ms'] / r['without_ms']:.2f} |\n" for r in rows)
    name = f"lut_crossover_{machine_tag()}" + (f"_{args.tag}" if args.tag else "")
    out = write(name, rows, head + body, machine())
    print(f"wrote {out}/{name}.md")


if __name__ == "__main__":
    main()
