"""Low-bit GEMM in Triton: y[M, N] = x[M, K] @ W^T with W read as BCQ bit-planes.

Each program owns a [BLOCK_M, BLOCK_N] output tile and one K-slice of it (split-K). Per K-step
it loads each plane's bytes once ([BLOCK_K/8, BLOCK_N], 16 rows side by side in the panel-major
layout), expands them to bits in registers, turns the bits into weights (bit -> +/-alpha, plus
the group offset) and feeds tl.dot with fp32 accumulation. One kernel serves the small-m path
(lut_gemm: BLOCK_M = 16/32, split-K) and the prefill path (tiled_gemm_bcq: wide tiles, grouped
program order for L2 reuse). The tile sizes come from torch_lowbit/backends/triton/tile_model.py.

Why bit-plane decode into the dot instead of LUT-GEMM's table of signed sums: Triton has no
per-lane indexed read of a shared-memory table, so a table lookup would be a register gather
per byte per row; decoding into tl.dot keeps the arithmetic on the tensor cores and the weight
read at bits/8 bytes per element. (The CUDA C++ kernel in csrc/cuda/lut_gemm/ is the table
version; benchmarks/gpu_kernels.py times both.)

Split-K is deterministic: each split writes its own fp32 partial [SPLIT_K, M, N] and the splits
are summed in a fixed order afterwards; no atomics.
"""
import torch
import triton
import triton.language as tl

from . import Launch, dot_in_fp32, grouped_tile, new_output, split_k_plan


@triton.jit
def _bcq_gemm_kernel(
    x_ptr, planes_ptr, alpha_ptr, offset_ptr, y_ptr,
    M, N, K, Kp, G, NG, k_per_split,
    BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, GROUP_ALIGNED: tl.constexpr, PARTIAL: tl.constexpr, DOT_FP32: tl.constexpr,
):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    split = tl.program_id(1)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = offs_m < M
    n_ok = offs_n < N
    row_bytes = Kp // 8
    plane_stride = ((N + 15) // 16) * row_bytes * 16
    # planes are panel-major [bits, ceil(N/16), Kp/8, 16]: byte (n, kb) at (n//16, kb, n%16)
    panel = (offs_n // 16) * row_bytes * 16 + offs_n % 16
    shifts = tl.arange(0, 8).to(tl.uint8)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    k_start = split * k_per_split
    k_end = tl.minimum(k_start + k_per_split, Kp)
    for k0 in range(k_start, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=m_ok[:, None] & (offs_k[None, :] < K), other=0.0)
        offs_kb = k0 // 8 + tl.arange(0, BLOCK_K // 8)
        bmask = (offs_kb[:, None] < row_bytes) & n_ok[None, :]
        wmask = (offs_k[:, None] < Kp) & n_ok[None, :]
        if GROUP_ALIGNED:
            # the whole K-step lies in one group: one alpha/offset row per plane
            g = k0 // G
            w = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32) + tl.load(offset_ptr + g * N + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        else:
            gk = offs_k // G
            w = tl.load(offset_ptr + gk[:, None] * N + offs_n[None, :], mask=wmask, other=0.0).to(tl.float32)
        for b in tl.static_range(BITS):
            byte = tl.load(planes_ptr + b * plane_stride + panel[None, :] + offs_kb[:, None] * 16, mask=bmask, other=0)
            bit = tl.reshape((byte[:, None, :] >> shifts[None, :, None]) & 1, (BLOCK_K, BLOCK_N))
            if GROUP_ALIGNED:
                a = tl.load(alpha_ptr + (b * NG + g) * N + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            else:
                a = tl.load(alpha_ptr + (b * NG + gk[:, None]) * N + offs_n[None, :], mask=wmask, other=0.0).to(tl.float32)
            w += tl.where(bit != 0, a, -a)
        if DOT_FP32:
            acc += tl.dot(x.to(tl.float32), w)
        else:
            acc += tl.dot(x, w.to(x.dtype))
    out_mask = m_ok[:, None] & n_ok[None, :]
    if PARTIAL:
        tl.store(y_ptr + (split * M + offs_m[:, None]) * N + offs_n[None, :], acc, mask=out_mask)
    else:
        tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty), mask=out_mask)


def bcq_gemm_launch(M: int, N: int, K: int, bits: int, Kp: int, group_size: int, act_dtype: torch.dtype,
                    scale_dtype: torch.dtype, block_m: int, block_n: int, block_k: int, split_k: int = 1,
                    group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> tuple[Launch, int]:
    """The launch of y[M, N] = x[M, K] @ W^T for K padded to Kp, and its split count (the K-splits
    actually used: never an empty one). Tensors, in order: x, planes, alpha, offset, target
    (the fp32 partials [splits, M, N] when splits > 1, else y)."""
    ng = Kp // group_size
    fp32 = dot_in_fp32() or act_dtype == torch.float32
    split_k, k_per_split = split_k_plan(Kp, block_k, split_k)
    partial = split_k > 1
    aligned = group_size % block_k == 0 or ng == 1
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n), split_k)
    meta = dict(BITS=bits, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m,
                GROUP_ALIGNED=aligned, PARTIAL=partial, DOT_FP32=fp32, num_warps=num_warps, num_stages=num_stages)
    pointers = (act_dtype, torch.uint8, scale_dtype, scale_dtype, torch.float32 if partial else act_dtype)
    return Launch(_bcq_gemm_kernel, grid, pointers, (M, N, K, Kp, group_size, ng, k_per_split), meta), split_k


def bcq_gemm(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor,
             in_features: int, group_size: int, block_m: int, block_n: int, block_k: int,
             split_k: int = 1, group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    """x [M, K] (contiguous) -> y [M, N] in x's dtype. block_k must be a multiple of 8 that
    divides the group size or is divided by it."""
    M, K = x.shape
    bits, _, row_bytes, _ = planes.shape
    N = alpha.shape[2]
    y = new_output((M, N), x.dtype, x.device)
    if M == 0 or N == 0:
        return y
    launch, splits = bcq_gemm_launch(M, N, K, bits, row_bytes * 8, group_size, x.dtype, alpha.dtype, block_m, block_n,
                                     block_k, split_k, group_m, num_warps, num_stages)
    target = new_output((splits, M, N), torch.float32, x.device) if splits > 1 else y
    launch(x, planes, alpha, offset, target)
    if splits > 1:
        y.copy_(target.sum(dim=0))  # a fixed-order reduction: deterministic
    return y
