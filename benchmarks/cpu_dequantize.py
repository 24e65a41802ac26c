"""bcq_dequantize on the CPU (what backward, dequantize() and exports run): the compiled kernel on
every SIMD path this CPU can run, against the plain-PyTorch reference and two floors of the
memory it writes — filling a fresh tensor (ordinary 4 KiB pages, first touch) and filling one
already touched. Medians in one process; the output is fp32, as the library's callers ask.

    python benchmarks/cpu_dequantize.py --threads 2
"""
from __future__ import annotations

import argparse
import statistics

import torch

import torch_lowbit
from torch_lowbit import reference
from torch_lowbit.backends import native
from harness import cpu_name, machine, machine_tag, median_ms, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", nargs="+", default=["11008x4096"])
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=["mse", "bcq"])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    best = torch_lowbit.build_info()["cpu_isa_best"]
    # amx adds only the bf16 tiled GEMM; dequantize runs the avx512 code there
    isas = [i for i in native.runnable_cpu_isas() if i != "amx"]
    rows = []
    for shape in args.shapes:
        n, k = map(int, shape.split("x"))
        w = torch.randn(n, k)
        touched = torch.empty(n, k).fill_(0)
        fresh_fill = median_ms(lambda: torch.empty(n, k).fill_(1.0), max_repeats=15)
        touched_fill = median_ms(lambda: touched.fill_(1.0), max_repeats=15)
        for bits in args.bits:
            for method in args.methods:
                qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=128, method=method, scale_dtype=torch.float32)
                ref = median_ms(lambda: reference.bcq_dequantize(*qw.op_args()), min_repeats=3, max_repeats=5)
                # Rounds over the paths, median of the rounds' medians: right after the reference
                # (GBs allocated and freed) fresh memory is slow to touch for a while on these VMs
                # (seen: 100-300 ms calls for a few seconds), whichever path runs then.
                per_isa: dict[str, list[float]] = {isa: [] for isa in isas}
                for _ in range(args.rounds):
                    for isa in isas:
                        native.set_cpu_isa(isa)
                        per_isa[isa].append(median_ms(lambda: torch.ops.torch_lowbit.bcq_dequantize(*qw.op_args()), max_repeats=15, budget_s=0.5))
                native.set_cpu_isa(best)
                for isa in isas:
                    ours = statistics.median(per_isa[isa])
                    rows.append({"shape": shape, "bits": bits, "method": method, "isa": isa, "ms": ours, "reference_ms": ref,
                                 "fresh_fill_ms": fresh_fill, "touched_fill_ms": touched_fill,
                                 "write_gb_s": n * k * 4 / ours / 1e6, "round_medians_ms": per_isa[isa]})
                    print(f"{shape} {bits}-bit {method} {isa}: {ours:.1f} ms (reference {ref:.1f}, fresh fill {fresh_fill:.1f}, "
                          f"touched fill {touched_fill:.1f})", flush=True)
    head = (f"bcq_dequantize, CPU — {cpu_name()}, {args.threads} threads, torch {torch.__version__}\n\n"
            f"Command: `python benchmarks/cpu_dequantize.py --threads {args.threads}`. Median of {args.rounds} rounds' medians, g128, fp32 output. "
            "fresh fill: `torch.empty(N, K).fill_(1)` (4 KiB pages, first touch); touched fill: the same into memory "
            "already written; the kernel's output is on huge pages (csrc/cpu/huge_page_output.h).\n\n"
            "| N x K | bits | method | ISA path | ms | GB/s written | reference ms | x reference | fresh fill ms | touched fill ms |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['shape']} | {r['bits']} | {r['method']} | {r['isa']} | {r['ms']:.1f} | {r['write_gb_s']:.1f} | "
                   f"{r['reference_ms']:.0f} | {r['reference_ms'] / r['ms']:.0f}x | {r['fresh_fill_ms']:.1f} | {r['touched_fill_ms']:.1f} |\n"
                   for r in rows)
    out = write(f"cpu_dequantize_{machine_tag()}", rows, head + body, machine())
    print(f"wrote {out}/cpu_dequantize_{machine_tag()}.md")


if __name__ == "__main__":
    main()
