"""Where LUT-GEMM stops paying against the many-row route (the weight expanded in blocks and
multiplied by ATen's sgemm): torch_lowbit.ops.lut_gemm against ops.linear ("auto", whatever
csrc/cpu/kernel_selector.h picks) and F.linear fp32 on the dense weight, at many rows, in one
process. Where auto already is the LUT, F.linear fp32 is the floor of the sgemm route (which adds
the expansion). The numbers behind kernel_selector.h's row ranges.

    python benchmarks/lut_crossover.py --threads 2
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import cpu_name, machine, machine_tag, median_ms, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", nargs="+", default=["11008x4096", "4096x4096", "1536x384", "384x1536"])
    ap.add_argument("--m", type=int, nargs="+", default=[64, 128, 256, 1536])
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = torch_lowbit.build_info()
    rows = []
    for shape in args.shapes:
        n, k = map(int, shape.split("x"))
        w = torch.randn(n, k)
        for bits in args.bits:
            qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=128)
            for m in args.m:
                if n * k >= 4096 * 4096 and m > 256:
                    continue  # minutes of fp32 GEMM on 2 cores; the trend is set by m = 256
                x = torch.randn(m, k)
                lut = median_ms(lambda: torch_lowbit.ops.lut_gemm(x, qw, backend="cpu"), max_repeats=15)
                auto = median_ms(lambda: torch_lowbit.ops.linear(x, qw, None, backend="cpu"), max_repeats=15)
                dense = median_ms(lambda: F.linear(x, w), max_repeats=15)
                rows.append({"shape": shape, "bits": bits, "m": m, "lut_ms": lut, "auto_ms": auto, "fp32_ms": dense})
                print(f"{shape} {bits}-bit m={m}: lut {lut:.2f} ms, auto {auto:.2f}, F.linear fp32 {dense:.2f}", flush=True)
    head = (f"LUT vs the many-row route — {cpu_name()}, {args.threads} threads, ISA {info['cpu_isa']}, "
            f"int8 lookup {info['cpu_lut_lookup']}, torch {torch.__version__}\n\n"
            "Command: `python benchmarks/lut_crossover.py " + f"--threads {args.threads}`. Medians; "
            "`LUT / auto` < 1 means the LUT is faster than what the selector picked.\n\n"
            "| N x K | bits | m | lut_gemm ms | auto ms | F.linear fp32 ms | LUT / auto | LUT / fp32 |\n|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['shape']} | {r['bits']} | {r['m']} | {r['lut_ms']:.2f} | {r['auto_ms']:.2f} | {r['fp32_ms']:.2f} | "
                   f"{r['lut_ms'] / r['auto_ms']:.2f} | {r['lut_ms'] / r['fp32_ms']:.2f} |\n" for r in rows)
    out = write(f"lut_crossover_{machine_tag()}", rows, head + body, machine())
    print(f"wrote {out}/lut_crossover_{machine_tag()}.md")


if __name__ == "__main__":
    main()
