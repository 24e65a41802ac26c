"""Dense tiled GEMM in Triton: y[M, N] = x[M, K] @ w[N, K]^T, fp32 accumulation, with grouped
program ordering (GROUP_M rows of tiles share their weight columns while they sit in L2)."""
import torch
import triton
import triton.language as tl

from . import Launch, dot_in_fp32, grouped_tile, new_output


@triton.jit
def _dense_gemm_kernel(
    x_ptr, w_ptr, y_ptr, M, N, K,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        w = tl.load(w_ptr + offs_n[None, :] * K + offs_k[:, None],
                    mask=(offs_n[None, :] < N) & (offs_k[:, None] < K), other=0.0)
        if DOT_FP32:
            acc += tl.dot(x.to(tl.float32), w.to(tl.float32))
        else:
            acc += tl.dot(x, w.to(x.dtype))
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def dense_gemm_launch(M: int, N: int, K: int, act_dtype: torch.dtype, weight_dtype: torch.dtype, block_m: int, block_n: int,
                      block_k: int, group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> Launch:
    """Tensors, in order: x [M, K], w [N, K], y [M, N] (x's dtype)."""
    fp32 = dot_in_fp32() or act_dtype == torch.float32
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n),)
    meta = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m, DOT_FP32=fp32,
                num_warps=num_warps, num_stages=num_stages)
    return Launch(_dense_gemm_kernel, grid, (act_dtype, weight_dtype, act_dtype), (M, N, K), meta)


def dense_gemm(x: torch.Tensor, w: torch.Tensor, block_m: int, block_n: int, block_k: int,
               group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    """x [M, K], w [N, K] (contiguous) -> y [M, N] in x's dtype."""
    M, K = x.shape
    N = w.shape[0]
    y = new_output((M, N), x.dtype, x.device)
    if M == 0 or N == 0:
        return y
    dense_gemm_launch(M, N, K, x.dtype, w.dtype, block_m, block_n, block_k, group_m, num_warps, num_stages)(x, w, y)
    return y
