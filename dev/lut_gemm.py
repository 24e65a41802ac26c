"""LUT-GEMM versions side by side: y = x @ W^T for a BCQ weight, each version checked against
torch_lowbit/reference.py and timed by one harness (median of repeated calls, 2 threads).

  1  portable C++: 256-entry fp32 tables (mu = 8), one lookup per weight byte
  2  AVX2, 16-entry fp32 tables, two 8-entry vpermps blended per lookup (csrc/cpu/lut_gemm/lut_gemm_avx2.cpp)
  3  AVX-512, 16-entry fp32 tables, one vpermps per 16 rows (lut_gemm_avx512.cpp)
  4  int8 tables, vpshufb, int16 accumulation (lut_gemm_int8_avx2.cpp): the default on AVX2 CPUs
  5  the same on zmm, 64 lookups per vpshufb (lut_gemm_int8_avx512.cpp): AVX-512 without VBMI/VNNI
  6  int8 tables, vpermb + vpdpbusd, int32 sums (lut_gemm_int8_avx512vnni.cpp): AVX-512 with VBMI/VNNI

    python dev/lut_gemm.py [versions...] [--n N --k K --m M --bits B --group G --threads T]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import torch_lowbit
from torch_lowbit import reference
from torch_lowbit.backends import native

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from harness import cpu_name  # noqa: E402

VERSIONS = {1: ("portable", "exact"), 2: ("avx2", "exact"), 3: ("avx512", "exact"), 4: ("avx2", "int8"), 5: ("avx512", "int8", "vpshufb"), 6: ("avx512", "int8", "vpermb")}


default_lookup = native.cpu_lut_lookup()


def run(version: int, x: torch.Tensor, qw: torch_lowbit.QuantizedWeight, repeats: int = 30) -> tuple[float, float]:
    isa, tables, *lookup = VERSIONS[version]
    native.set_cpu_isa(isa)
    native.set_cpu_lut_tables(tables)
    native.set_cpu_lut_lookup(lookup[0] if lookup else "vpshufb")
    try:
        y = torch_lowbit.ops.lut_gemm(x, qw, backend="cpu")
        planes, alpha, offset, k, g = qw.op_args()
        ref = reference.lut_gemm(x, planes, alpha.float(), offset.float(), k, g)
        err = ((y - ref).norm() / ref.norm()).item()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch_lowbit.ops.lut_gemm(x, qw, backend="cpu")
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3, err
    finally:
        native.set_cpu_isa(torch_lowbit.build_info()["cpu_isa_best"])
        native.set_cpu_lut_tables("int8")
        native.set_cpu_lut_lookup(default_lookup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("versions", type=int, nargs="*", default=sorted(VERSIONS))
    ap.add_argument("--n", type=int, default=11008)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--m", type=int, default=1)
    ap.add_argument("--bits", type=int, default=3)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runnable = native.runnable_cpu_isas()
    qw = torch_lowbit.quantize_weight(torch.randn(args.n, args.k), bits=args.bits, group_size=args.group)
    x = torch.randn(args.m, args.k)
    print(f"{cpu_name()}, {args.threads} threads: {args.n}x{args.k} m={args.m} {args.bits}-bit g{args.group} ({qw.nbytes / 1e6:.1f} MB)")
    for v in args.versions:
        isa, tables, *lookup = VERSIONS[v]
        if isa not in runnable or (lookup == ["vpermb"] and default_lookup != "vpermb"):
            print(f"  {v}  {isa:8s} {tables:5s}  skipped: this CPU lacks {isa}{' VBMI/VNNI' if lookup else ''}")
            continue
        ms, err = run(v, x, qw)
        print(f"  {v}  {isa:8s} {tables:5s}  {ms:8.3f} ms  {qw.nbytes / ms / 1e6:6.1f} GB/s  rel. error vs reference {err:.1e}")


if __name__ == "__main__":
    main()
