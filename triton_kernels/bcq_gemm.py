"""Low-bit GEMM in Triton: y[M, N] = x[M, K] @ W^T with W read as BCQ bit-planes.

Each program owns a [BLOCK_M, BLOCK_N] output tile; per K-step it decodes the weight tile
[BLOCK_K, BLOCK_N] from the bit-planes (bit -> +/-alpha, plus the group offset) in registers and
feeds tl.dot with fp32 accumulation. One kernel serves the small-m LUT path (lut_gemm: a
narrow BLOCK_M) and the prefill path (tiled_gemm_bcq: a wide one). No atomics: every output is
written once, so results are deterministic.
"""
import torch
import triton
import triton.language as tl

from . import dot_in_fp32, new_output


@triton.jit
def _bcq_gemm_kernel(
    x_ptr, planes_ptr, alpha_ptr, offset_ptr, y_ptr,
    M, N, K, Kp, G, NG,
    BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    row_bytes = Kp // 8
    P = (N + 15) // 16  # planes are panel-major: [bits, P, Kp/8, 16]
    panel = (offs_n // 16) * row_bytes * 16 + offs_n % 16
    for k0 in range(0, Kp, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        g = offs_k // G
        wmask = (offs_k[:, None] < Kp) & n_ok[None, :]
        w = tl.load(offset_ptr + g[:, None] * N + offs_n[None, :], mask=wmask, other=0.0).to(tl.float32)
        shift = (offs_k % 8).to(tl.uint8)
        for b in tl.static_range(BITS):
            byte = tl.load(planes_ptr + b * P * row_bytes * 16 + panel[None, :] + (offs_k[:, None] // 8) * 16,
                           mask=wmask, other=0)
            a = tl.load(alpha_ptr + (b * NG + g[:, None]) * N + offs_n[None, :], mask=wmask, other=0.0).to(tl.float32)
            bit = (byte >> shift[:, None]) & 1
            w += tl.where(bit != 0, a, -a)
        if DOT_FP32:
            acc += tl.dot(x.to(tl.float32), w)
        else:
            acc += tl.dot(x, w.to(x.dtype))
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & n_ok[None, :])


def bcq_gemm(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor,
             in_features: int, group_size: int, block_m: int, block_n: int, block_k: int) -> torch.Tensor:
    """x [M, K] (contiguous) -> y [M, N] in x's dtype."""
    M, K = x.shape
    bits, _, row_bytes, _ = planes.shape
    N = alpha.shape[2]
    Kp = row_bytes * 8
    y = new_output((M, N), x.dtype, x.device)
    if M == 0 or N == 0:
        return y
    fp32 = dot_in_fp32() or x.dtype == torch.float32
    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))
    _bcq_gemm_kernel[grid](
        x, planes, alpha, offset, y, M, N, K, Kp, group_size, Kp // group_size,
        BITS=bits, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, DOT_FP32=fp32,
    )
    return y
