"""Low-bit GEMV in Triton for one activation row (decode): y[N] = W x with W read as BCQ bit-planes.

Memory-bound, so it is built around the weight stream: each program owns BLOCK_N rows (whole
16-row panels) and a K-slice, and reads each plane's bytes as int32 words — in the panel-major
layout [bits, ceil(N/16), Kp/8, 16] a panel's bytes for BLOCK_K/8 consecutive k-bytes are one
contiguous run, so every thread loads 16 bytes at a time (one k-byte of all 16 rows). The words
are unpacked in registers: bit 8j+t of word w is row 4w+j at k = 8*kb+t. No tensor-core tile
(an m=1 tile would waste 15/16 of it) and no decoded weight tile: per plane b and group g it
forms S_b = sum of x over the set bits, and since a weight is offset + sum_b alpha_b * (+/-1),
y[n] += sum_b alpha_b[g, n] * (2 S_b - X_g) + offset[g, n] * X_g with X_g the group's sum of x.

Split-K writes fp32 partials [splits, N] summed afterwards in a fixed order (deterministic), as
bcq_gemm.py does. BLOCK_K divides the group size (one group per K-step).
"""
import torch
import triton
import triton.language as tl

from . import Launch, new_output, split_k_plan


@triton.jit
def _bcq_gemv_kernel(
    x_ptr, planes_ptr, alpha_ptr, offset_ptr, y_ptr,
    N, K, Kp, G, NG, k_per_split,
    BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PARTIAL: tl.constexpr,
):
    PANELS: tl.constexpr = BLOCK_N // 16
    KB: tl.constexpr = BLOCK_K // 8
    split = tl.program_id(1)
    panel = tl.program_id(0) * PANELS + tl.arange(0, PANELS)
    row_words = Kp // 2  # int32 words per panel row of k-bytes: Kp/8 bytes x 16 rows / 4
    plane_words = ((N + 15) // 16) * row_words
    words = planes_ptr.to(tl.pointer_type(tl.int32))
    kb = tl.arange(0, KB)
    # word (panel, kb, w): bytes of rows 16*panel + 4w .. +3 at k-byte kb
    word_at = panel[:, None, None] * row_words + kb[None, :, None] * 4 + tl.arange(0, 4)[None, None, :]
    panel_ok = (panel < (N + 15) // 16)[:, None, None]
    bit = tl.arange(0, 32)
    # bit 8j + t of a word: row 4w + j, k offset t within the k-byte
    k_of_bit = kb[:, None] * 8 + bit[None, :] % 8  # [KB, 32]
    rows = panel[:, None] * 16 + tl.arange(0, 16)[None, :]  # [PANELS, 16]
    row_ok = rows < N
    acc = tl.zeros((PANELS, 16), dtype=tl.float32)
    k_start = split * k_per_split
    k_end = tl.minimum(k_start + k_per_split, Kp)
    for k0 in range(k_start, k_end, BLOCK_K):
        xk = tl.load(x_ptr + k0 + k_of_bit, mask=k0 + k_of_bit < K, other=0.0).to(tl.float32)  # [KB, 32]
        total = tl.sum(tl.sum(xk, axis=1), axis=0) / 4  # each x appears 4 times along the 32 bits
        g = k0 // G
        wmask = panel_ok & (k0 // 8 + kb < Kp // 8)[None, :, None]
        for b in tl.static_range(BITS):
            w = tl.load(words + b * plane_words + k0 // 2 + word_at, mask=wmask, other=0)  # [PANELS, KB, 4]
            on = ((w[:, :, :, None] >> bit[None, None, None, :]) & 1) != 0  # [PANELS, KB, 4, 32]
            picked = tl.where(on, xk[None, :, None, :], 0.0)
            s = tl.sum(tl.reshape(tl.sum(picked, axis=1), (PANELS, 4, 4, 8)), axis=3)  # [PANELS, 4 words, 4 bytes]
            a = tl.load(alpha_ptr + (b * NG + g) * N + rows, mask=row_ok, other=0.0).to(tl.float32)
            acc += a * (2 * tl.reshape(s, (PANELS, 16)) - total)
        acc += tl.load(offset_ptr + g * N + rows, mask=row_ok, other=0.0).to(tl.float32) * total
    if PARTIAL:
        tl.store(y_ptr + split * N + rows, acc, mask=row_ok)
    else:
        tl.store(y_ptr + rows, acc.to(y_ptr.dtype.element_ty), mask=row_ok)


def bcq_gemv_launch(N: int, K: int, bits: int, Kp: int, group_size: int, act_dtype: torch.dtype, scale_dtype: torch.dtype,
                    block_n: int, block_k: int, split_k: int = 1, num_warps: int = 4, num_stages: int = 3) -> tuple[Launch, int]:
    """The launch for one row and its split count. Tensors: x [K], planes, alpha, offset, target
    (fp32 partials [splits, N] when splits > 1, else y [N] in x's dtype)."""
    if block_n % 16 or block_k % 8 or group_size % block_k:
        raise ValueError(f"block_n must be a multiple of 16 and block_k of 8 dividing group_size={group_size}, got {block_n}, {block_k}")
    split_k, k_per_split = split_k_plan(Kp, block_k, split_k)
    partial = split_k > 1
    grid = (triton.cdiv(N, block_n), split_k)
    meta = dict(BITS=bits, BLOCK_N=block_n, BLOCK_K=block_k, PARTIAL=partial, num_warps=num_warps, num_stages=num_stages)
    pointers = (act_dtype, torch.uint8, scale_dtype, scale_dtype, torch.float32 if partial else act_dtype)
    return Launch(_bcq_gemv_kernel, grid, pointers, (N, K, Kp, group_size, Kp // group_size, k_per_split), meta), split_k


def bcq_gemv(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int,
             group_size: int, block_n: int, block_k: int, split_k: int = 1, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    """x [1, K] (contiguous) -> y [1, N] in x's dtype."""
    bits, _, row_bytes, _ = planes.shape
    N = alpha.shape[2]
    y = new_output((1, N), x.dtype, x.device)
    if N == 0:
        return y
    launch, splits = bcq_gemv_launch(N, x.shape[1], bits, row_bytes * 8, group_size, x.dtype, alpha.dtype, block_n, block_k,
                                     split_k, num_warps, num_stages)
    target = new_output((splits, N), torch.float32, x.device) if splits > 1 else y
    launch(x, planes, alpha, offset, target)
    if splits > 1:
        y.copy_(target.sum(dim=0, keepdim=True))
    return y
