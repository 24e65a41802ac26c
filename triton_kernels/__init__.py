"""Triton kernels of torch_lowbit, installed as `torch_lowbit.triton_kernels` (never as a
top-level `triton_kernels`, which other projects own). They run as the `triton_` family of the
ops defined in torch_lowbit/library.py; torch_lowbit/backends/triton/ops.py registers them and
tile_model.py beside it sizes their tiles.

Under TRITON_INTERPRET=1 these kernels run on CPU tensors (Triton's interpreter); that is how CI
tests them. There, bf16 operands are cast to fp32 before tl.dot (the interpreter's bf16 dot is
wrong), which `dot_in_fp32()` decides.
"""
import dataclasses

import triton
import triton.language as tl

from torch_lowbit._env import env_flag


@dataclasses.dataclass(frozen=True)
class Launch:
    """Everything a launch compiles from, computed from shapes and dtypes alone. The wrappers
    launch through it, and the ahead-of-time compile check (torch_lowbit/compile_check/)
    compiles the same record for sm_80/89/90 without a GPU, so it checks exactly what runs.

    `pointer_dtypes` are the dtypes of the leading tensor arguments, `scalars` the integer
    arguments after them, `meta` the constexprs plus num_warps/num_stages."""

    kernel: object
    grid: tuple
    pointer_dtypes: tuple
    scalars: tuple
    meta: dict

    def __call__(self, *tensors) -> None:
        if len(tensors) != len(self.pointer_dtypes):
            raise ValueError(f"{self.kernel.__name__}: expected {len(self.pointer_dtypes)} tensors, got {len(tensors)}")
        self.kernel[self.grid](*tensors, *self.scalars, **self.meta)


def split_k_plan(Kp: int, block_k: int, split_k: int) -> tuple[int, int]:
    """(splits, K elements per split) for a K-split request: at least one K-step per split and
    no empty split (the count is recomputed from the rounded-up share)."""
    k_steps = triton.cdiv(Kp, block_k)
    k_per_split = triton.cdiv(k_steps, max(1, min(split_k, k_steps))) * block_k
    return triton.cdiv(Kp, k_per_split), k_per_split


def dot_in_fp32() -> bool:
    return env_flag("TRITON_INTERPRET")


def new_output(shape, dtype, device):
    """torch.empty, filled with NaN when TORCH_LOWBIT_POISON=1 (the tests set it)."""
    import torch

    out = torch.empty(shape, dtype=dtype, device=device)
    if env_flag("TORCH_LOWBIT_POISON"):
        out.fill_(float("nan"))
    return out


@triton.jit
def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(tile row, tile column) of program `pid` in grouped order: GROUP_M rows of tiles walk the
    columns together, so the weight tiles they share are still in L2."""
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    return first_m + (pid % per_group) % group_rows, (pid % per_group) // group_rows
