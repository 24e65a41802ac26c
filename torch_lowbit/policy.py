"""Kernel choice by shape.

CPU — LUT-GEMM for few activation rows, tiled GEMM beyond. LUT-GEMM reads every bit-plane once
per activation row (cost ~ rows * bits); the tiled kernel expands each weight tile once (cost ~
bits) and reuses it across rows with fp32 FMAs (cost ~ rows). Measured with
`python benchmarks/cpu_gemm.py --threads 2` on the 2-core CI machine (AVX-512, results in
benchmarks/results/cpu_gemm.md): LUT wins at m <= 4 for every shape and bit width, at m = 16 it
wins for 2-bit (~1.1-1.2x), ties at 3-bit and loses for 4/8-bit, and at m = 64 the tiled kernel
wins everywhere. rows * bits <= 32 captures that crossover. With bf16 activations on a CPU
with AMX the tiled kernel runs on the tile unit and the crossover is rows * bits <= 12.

CUDA — which kernel family (CUDA C++ "native" or "triton") runs an op on a CUDA tensor under
backend="auto", from measurements: `python benchmarks/gpu_kernels.py` writes
benchmarks/results/gpu_policy.json (per GPU name and op: the faster family up to each row count),
and files copied into torch_lowbit/data/gpu_policy/ ship with the package. For a GPU without
measurements the default is Triton when it is installed (its kernels use tensor cores and the
tile model), else the CUDA C++ kernels. Within the chosen family, lut_gemm vs tiled_gemm follows
LUT_MAX_ROW_BITS (CUDA: a placeholder until measured; the Triton kernel is one kernel whose tiles
the tile model sizes for any m, so the split matters less there).
"""
from __future__ import annotations

import functools
import json
from importlib import resources

import torch

LUT_MAX_ROW_BITS = {"cpu": 32, "cuda": 96}
# bf16 activations on a CPU with AMX: the tiled kernel runs on the tile unit, and its cost is
# mostly the once-per-call weight expansion (~3.6 ms at 11008x4096 3-bit), so it overtakes LUT
# (~1.1 ms per 3-bit row) from about 4 rows: measured with benchmarks/cpu_gemm.py --dtype bf16.
LUT_MAX_ROW_BITS_AMX_BF16 = 12


def use_lut(rows: int, bits: int, out_features: int, in_features: int, device: torch.device,
            dtype: torch.dtype = torch.float32) -> bool:
    if device.type == "cpu" and dtype == torch.bfloat16 and _cpu_isa() == "amx":
        return rows * bits <= LUT_MAX_ROW_BITS_AMX_BF16
    return rows * bits <= LUT_MAX_ROW_BITS.get(device.type, 32)


def _cpu_isa() -> str:
    from torch_lowbit import _ext

    return _ext.load().cpu_isa()


@functools.lru_cache(maxsize=None)
def measured_gpu_policies() -> dict:
    """{gpu name: {op: [[max_rows, "native" | "triton"], ...]}} from the shipped JSON files."""
    policies: dict = {}
    folder = resources.files("torch_lowbit") / "data" / "gpu_policy"
    if not folder.is_dir():
        return policies
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            policies.setdefault(data["device"], {}).update(data["ops"])
    return policies


def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if torch.cuda.is_available() else ""


def cuda_family(op: str | None, rows: int, device: torch.device, triton_ok: bool) -> str:
    """"native" or "triton" for `op` with `rows` activation rows on the CUDA `device`."""
    if not triton_ok:
        return "native"
    table = measured_gpu_policies().get(_gpu_name(device), {}).get(op or "", [])
    for max_rows, family in table:
        if rows <= max_rows:
            return family
    return "triton"
