"""Plain-PyTorch definitions of every torch_lowbit op: the oracle for the tests, the readable
statement of what each kernel computes, and each op's default implementation (registered in
library.py for every device without a compiled kernel). Every kernel accumulates in fp32 and
returns x's dtype. Depends on the format alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from torch_lowbit.format import unpack_signs


def bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    """W[n, k] = sum_b alpha[b, k // G, n] * (+1 if bit k % 8 of byte (b, n, k // 8) else -1) + offset[k // G, n]."""
    signs = unpack_signs(planes, alpha.shape[2]).float() * 2 - 1  # [bits, N, Kp]
    a = alpha.float().permute(0, 2, 1).repeat_interleave(group_size, dim=2)  # [bits, N, Kp]
    z = offset.float().t().repeat_interleave(group_size, dim=1)  # [N, Kp]
    w = (a * signs).sum(dim=0) + z
    return w[:, :in_features].to(alpha.dtype)


def bcq_linear(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ W^T (+ bias)."""
    w = bcq_dequantize(planes, alpha.float(), offset.float(), in_features, group_size)
    y = x.float() @ w.t()
    return (y if bias is None else y + bias.float()).to(x.dtype)


lut_gemm = tiled_gemm_bcq = bcq_linear  # the same product; the kernels differ in how they get there


def tiled_gemm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y[M, N] = x[M, K] @ weight[N, K]^T."""
    return (x.float() @ weight.float().t()).to(x.dtype)


def is_channels_last(x: torch.Tensor) -> bool:
    """x is channels_last (and not also plain contiguous, as 1x1 images are)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _like_input(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out.contiguous(memory_format=torch.channels_last if is_channels_last(x) else torch.contiguous_format)


def im2win_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    """F.conv2d on x zero-padded by padding = [top, bottom, left, right]; output in x's memory format."""
    top, bottom, left, right = padding
    xp = F.pad(x.float(), (left, right, top, bottom))
    out = F.conv2d(xp, weight.float(), None if bias is None else bias.float(), tuple(stride), 0, tuple(dilation), groups)
    return _like_input(out.to(x.dtype), x)


def im2win_conv2d_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, weight_shape: list[int], group_size: int, bias: torch.Tensor | None, stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    k = weight_shape[1] * weight_shape[2] * weight_shape[3]
    w = bcq_dequantize(planes, alpha.float(), offset.float(), k, group_size).reshape(weight_shape)
    return im2win_conv2d(x, w, bias, stride, padding, dilation, groups)
