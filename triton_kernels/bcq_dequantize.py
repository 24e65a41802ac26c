"""bcq_dequantize in Triton: W[N, K] fp32 from BCQ bit-planes, one [BLOCK_N, BLOCK_K] tile per
program. It is what the Triton family's backward multiplies by, so a machine with Triton but
without the compiled extension can still backprop through low-bit layers.

A tile lies inside one group (BLOCK_K divides the group size), so each plane costs one [BLOCK_N,
BLOCK_K/8] byte load (16 rows' bytes are contiguous in the panel-major layout) and one row of
alphas, expanded to bits in registers. (Loading a byte and an alpha per output element, as the
first version did, kept BITS full tiles of them live and spilled at 4-8 bits on sm_89/sm_90 —
found by the compile check.)
"""
import torch
import triton
import triton.language as tl

from . import Launch, new_output


@triton.jit
def _bcq_dequantize_kernel(planes_ptr, alpha_ptr, offset_ptr, w_ptr, N, K, Kp, G, NG,
                           BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    k0 = tl.program_id(1) * BLOCK_K
    offs_kb = k0 // 8 + tl.arange(0, BLOCK_K // 8)
    n_ok = offs_n < N
    row_bytes = Kp // 8
    plane_stride = ((N + 15) // 16) * row_bytes * 16
    # panel-major planes [bits, ceil(N/16), Kp/8, 16]: byte (n, kb) at (n // 16, kb, n % 16)
    byte_at = (offs_n // 16)[:, None] * row_bytes * 16 + offs_kb[None, :] * 16 + (offs_n % 16)[:, None]
    bmask = n_ok[:, None] & (offs_kb[None, :] < row_bytes)
    g = k0 // G
    shifts = tl.arange(0, 8).to(tl.uint8)
    w = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32) + tl.load(offset_ptr + g * N + offs_n, mask=n_ok, other=0.0).to(tl.float32)[:, None]
    for b in tl.static_range(BITS):
        byte = tl.load(planes_ptr + b * plane_stride + byte_at, mask=bmask, other=0)
        bit = tl.reshape((byte[:, :, None] >> shifts[None, None, :]) & 1, (BLOCK_N, BLOCK_K))
        a = tl.load(alpha_ptr + (b * NG + g) * N + offs_n, mask=n_ok, other=0.0).to(tl.float32)[:, None]
        w += tl.where(bit != 0, a, -a)
    offs_k = k0 + tl.arange(0, BLOCK_K)
    tl.store(w_ptr + offs_n[:, None] * K + offs_k[None, :], w, mask=n_ok[:, None] & (offs_k[None, :] < K))


def bcq_dequantize_launch(N: int, K: int, bits: int, Kp: int, group_size: int, scale_dtype: torch.dtype,
                          block_n: int = 64, block_k: int | None = None) -> Launch:
    """Tensors, in order: planes, alpha, offset, W [N, K] fp32. block_k (default: the largest of
    128, 64, 32 dividing the group size) must divide the group size."""
    block_k = block_k or next(b for b in (128, 64, 32, 16, 8) if group_size % b == 0)
    if group_size % block_k or block_k % 8:
        raise ValueError(f"block_k: expected a multiple of 8 dividing group_size={group_size}, got {block_k}")
    grid = (triton.cdiv(N, block_n), triton.cdiv(K, block_k))
    return Launch(_bcq_dequantize_kernel, grid, (torch.uint8, scale_dtype, scale_dtype, torch.float32),
                  (N, K, Kp, group_size, Kp // group_size),
                  # 8 warps: 32 outputs a thread; with 4 (64 a thread) 8-bit tiles spilled on sm_89/90
                  dict(BITS=bits, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=8))


def bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int,
                   group_size: int, block_n: int = 64, block_k: int | None = None) -> torch.Tensor:
    """planes/alpha/offset contiguous -> W [N, in_features] fp32."""
    bits, _, row_bytes, _ = planes.shape
    n = alpha.shape[2]
    w = new_output((n, in_features), torch.float32, planes.device)
    if n == 0 or in_features == 0:
        return w
    bcq_dequantize_launch(n, in_features, bits, row_bytes * 8, group_size, alpha.dtype, block_n, block_k)(planes, alpha, offset, w)
    return w
