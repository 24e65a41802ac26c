"""Kernel choice by shape: LUT-GEMM for few activation rows, tiled GEMM beyond.

LUT-GEMM builds tables once per activation row and then reads each weight bit once per row:
its cost grows with rows * weight bytes, while the tiled kernel expands each weight tile once
and reuses it across rows. The crossover below is a placeholder until the CPU kernel issue
measures it (benchmarks/cpu_gemm.py) on the CI machine kind.
"""
from __future__ import annotations

import torch

LUT_MAX_ROWS = {"cpu": 8, "cuda": 32}


def use_lut(rows: int, bits: int, out_features: int, in_features: int, device: torch.device) -> bool:
    return rows <= LUT_MAX_ROWS.get(device.type, 8)
