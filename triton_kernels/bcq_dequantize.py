"""bcq_dequantize in Triton: W[N, K] fp32 from BCQ bit-planes, one [BLOCK_N, BLOCK_K] tile per
program. It is what the Triton family's backward multiplies by, so a machine with Triton but
without the compiled extension can still backprop through low-bit layers.
"""
import torch
import triton
import triton.language as tl

from . import Launch, new_output


@triton.jit
def _bcq_dequantize_kernel(planes_ptr, alpha_ptr, offset_ptr, w_ptr, N, K, Kp, G, NG,
                           BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    n_ok = offs_n < N
    mask = n_ok[:, None] & (offs_k[None, :] < K)
    row_bytes = Kp // 8
    plane_stride = ((N + 15) // 16) * row_bytes * 16
    # panel-major planes [bits, ceil(N/16), Kp/8, 16]: byte (n, k // 8) at (n // 16, k // 8, n % 16)
    byte_at = (offs_n // 16)[:, None] * row_bytes * 16 + (offs_k // 8)[None, :] * 16 + (offs_n % 16)[:, None]
    shift = (offs_k % 8).to(tl.uint8)[None, :]
    g = (offs_k // G)[None, :]
    w = tl.load(offset_ptr + g * N + offs_n[:, None], mask=mask, other=0.0).to(tl.float32)
    for b in tl.static_range(BITS):
        byte = tl.load(planes_ptr + b * plane_stride + byte_at, mask=mask, other=0)
        a = tl.load(alpha_ptr + (b * NG + g) * N + offs_n[:, None], mask=mask, other=0.0).to(tl.float32)
        w += tl.where(((byte >> shift) & 1) != 0, a, -a)
    tl.store(w_ptr + offs_n[:, None] * K + offs_k[None, :], w, mask=mask)


def bcq_dequantize_launch(N: int, K: int, bits: int, Kp: int, group_size: int, scale_dtype: torch.dtype,
                          block_n: int = 64, block_k: int = 128) -> Launch:
    """Tensors, in order: planes, alpha, offset, W [N, K] fp32."""
    grid = (triton.cdiv(N, block_n), triton.cdiv(K, block_k))
    return Launch(_bcq_dequantize_kernel, grid, (torch.uint8, scale_dtype, scale_dtype, torch.float32),
                  (N, K, Kp, group_size, Kp // group_size), dict(BITS=bits, BLOCK_N=block_n, BLOCK_K=block_k))


def bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int,
                   group_size: int, block_n: int = 64, block_k: int = 128) -> torch.Tensor:
    """planes/alpha/offset contiguous -> W [N, in_features] fp32."""
    bits, _, row_bytes, _ = planes.shape
    n = alpha.shape[2]
    w = new_output((n, in_features), torch.float32, planes.device)
    if n == 0 or in_features == 0:
        return w
    bcq_dequantize_launch(n, in_features, bits, row_bytes * 8, group_size, alpha.dtype, block_n, block_k)(planes, alpha, offset, w)
    return w
