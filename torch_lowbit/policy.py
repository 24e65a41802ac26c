"""Kernel choice by shape: LUT-GEMM for few activation rows, tiled GEMM beyond.

LUT-GEMM reads every bit-plane once per activation row (cost ~ rows * bits); the tiled kernel
expands each weight tile once (cost ~ bits) and reuses it across rows with fp32 FMAs (cost ~
rows). Measured with `python benchmarks/cpu_gemm.py --threads 2` on the 2-core CI machine
(AVX-512, results in benchmarks/results/cpu_gemm.md): LUT wins at m <= 4 for every shape and
bit width, at m = 16 it wins for 2-bit (~1.1-1.2x), ties at 3-bit and loses for 4/8-bit, and at
m = 64 the tiled kernel wins everywhere. rows * bits <= 32 captures that crossover.

On CUDA the rule is a placeholder until a GPU run of benchmarks/gpu_kernels.py measures it.
"""
from __future__ import annotations

import torch

LUT_MAX_ROW_BITS = {"cpu": 32, "cuda": 96}


def use_lut(rows: int, bits: int, out_features: int, in_features: int, device: torch.device) -> bool:
    return rows * bits <= LUT_MAX_ROW_BITS.get(device.type, 32)
