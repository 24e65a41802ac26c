"""The Triton kernels as torch ops (torch_lowbit::triton_*), so torch.compile traces them and
autograd works like the native ops. Same signatures as the schemas in csrc/schemas.cpp;
fakes and autograd come from _registrations.py. Imported on first use of backend="triton".
"""
from __future__ import annotations

from typing import Optional

import torch

from torch_lowbit import _registrations

# Block sizes per path. The LUT path serves few activation rows (narrow BLOCK_M); the tiled
# path serves prefill-sized m.
LUT_BLOCKS = dict(block_m=16, block_n=64, block_k=64)
TILED_BLOCKS = dict(block_m=64, block_n=64, block_k=64)
DENSE_BLOCKS = dict(block_m=64, block_n=64, block_k=32)


def _contiguous(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous()


@torch.library.custom_op("torch_lowbit::triton_bcq_dequantize", mutates_args=())
def triton_bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    # An identity GEMM through the low-bit kernel: W = I_K @ W^T^T, exact in fp32.
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm

    eye = torch.eye(in_features, dtype=torch.float32, device=planes.device)
    wt = bcq_gemm(eye, _contiguous(planes), _contiguous(alpha), _contiguous(offset), in_features, group_size, **TILED_BLOCKS)
    return wt.t().contiguous().to(alpha.dtype)


@torch.library.custom_op("torch_lowbit::triton_lut_gemm", mutates_args=())
def triton_lut_gemm(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm

    return bcq_gemm(_contiguous(x), _contiguous(planes), _contiguous(alpha), _contiguous(offset), in_features, group_size, **LUT_BLOCKS)


@torch.library.custom_op("torch_lowbit::triton_tiled_gemm_bcq", mutates_args=())
def triton_tiled_gemm_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm

    return bcq_gemm(_contiguous(x), _contiguous(planes), _contiguous(alpha), _contiguous(offset), in_features, group_size, **TILED_BLOCKS)


@torch.library.custom_op("torch_lowbit::triton_tiled_gemm", mutates_args=())
def triton_tiled_gemm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    from torch_lowbit.triton_kernels.dense_gemm import dense_gemm

    return dense_gemm(_contiguous(x), _contiguous(weight.to(x.dtype)), **DENSE_BLOCKS)


def _conv_out(x: torch.Tensor, out_nhwc: torch.Tensor) -> torch.Tensor:
    out = out_nhwc.permute(0, 3, 1, 2)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out if channels_last else out.contiguous()


@torch.library.custom_op("torch_lowbit::triton_im2win_conv2d", mutates_args=())
def triton_im2win_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d

    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    out = im2win_conv2d(x_nhwc, list(weight.shape), bias, stride, padding, dilation, groups, weight=_contiguous(weight.to(x.dtype)))
    return _conv_out(x, out)


@torch.library.custom_op("torch_lowbit::triton_im2win_conv2d_bcq", mutates_args=())
def triton_im2win_conv2d_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, weight_shape: list[int], group_size: int, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d

    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    bcq = (_contiguous(planes), _contiguous(alpha), _contiguous(offset), group_size)
    out = im2win_conv2d(x_nhwc, weight_shape, bias, stride, padding, dilation, groups, bcq=bcq)
    return _conv_out(x, out)


_registrations.register(prefix="triton_")
