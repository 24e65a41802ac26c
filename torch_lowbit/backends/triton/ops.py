"""The Triton kernels as the `triton_` family of the ops in torch_lowbit/library.py (same
schemas, fakes and autograd; the Triton family's backward dequantizes with the Triton
bcq_dequantize). Registered for CUDA tensors and, under TRITON_INTERPRET=1, CPU tensors.
Imported by torch_lowbit/dispatch.py on the first call that runs Triton, so that importing
torch_lowbit never imports triton.

The kernels live in the top-level triton_kernels/ folder, installed as torch_lowbit.triton_kernels.
"""
from __future__ import annotations

from typing import Optional

import torch

from torch_lowbit import library, reference
from torch_lowbit._env import env_flag
from torch_lowbit.backends.triton.tile_model import TileConfig, conv_config, default_config, gemv_config, rank_configs, shape_class, spec_for_device
from torch_lowbit.triton_kernels.bcq_dequantize import bcq_dequantize as _triton_dequantize
from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm
from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv
from torch_lowbit.triton_kernels.dense_gemm import dense_gemm
from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d as _triton_im2win


def _act_bytes(dtype: torch.dtype) -> int:
    return 4 if dtype == torch.float32 else 2


_tuned: dict[tuple, TileConfig] = {}


def choose_config(m: int, n: int, k: int, device: torch.device, dtype: torch.dtype, weight_bits: int,
                  group_size: Optional[int], run=None) -> TileConfig:
    """Tile sizes for one GEMM: the tile model's prediction (tile_model.py). With
    TORCH_LOWBIT_TRITON_AUTOTUNE=1 on a GPU, the model's top 8 are timed once per shape class
    (m rounded up to a power of two) and the fastest is kept for the process."""
    spec = spec_for_device(device if device.type == "cuda" else None)
    key = (shape_class(m), n, k, str(device), dtype, weight_bits, group_size)
    if key in _tuned:
        return _tuned[key]
    cfg = default_config(m, n, k, spec, _act_bytes(dtype), weight_bits, group_size)
    if run is not None and device.type == "cuda" and env_flag("TORCH_LOWBIT_TRITON_AUTOTUNE"):
        from triton.runtime.errors import OutOfResources
        from triton.testing import do_bench

        timed = []
        for _, c in rank_configs(shape_class(m), n, k, spec, _act_bytes(dtype), weight_bits, group_size)[:8]:
            try:  # a config the compile check never saw may not fit this card: skip it
                timed.append((do_bench(lambda c=c: run(c), warmup=5, rep=20), c))
            except OutOfResources:
                continue
        cfg = min(timed, key=lambda t: t[0])[1] if timed else cfg
    _tuned[key] = cfg
    return cfg


def bcq_product(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    # One row (decode) runs the GEMV, which streams the planes in 16-byte words and needs no
    # tensor-core tile; more rows share one tiled kernel that the tile model sizes for m (small
    # tiles and split-K for few rows, wide tiles for prefill), so lut_gemm and tiled_gemm_bcq share it.
    args = (x.contiguous(), planes.contiguous(), alpha.contiguous(), offset.contiguous(), in_features, group_size)
    if x.shape[0] == 1:
        spec = spec_for_device(x.device if x.device.type == "cuda" else None)
        c = gemv_config(alpha.shape[2], planes.shape[2] * 8, spec, group_size)
        return bcq_gemv(*args, block_n=c.block_n, block_k=c.block_k, split_k=c.split_k, num_warps=c.num_warps, num_stages=c.num_stages)
    run = lambda c: bcq_gemm(*args, split_k=c.split_k, group_m=c.group_m, **c.kernel_args())  # noqa: E731
    return run(choose_config(x.shape[0], alpha.shape[2], planes.shape[2] * 8, x.device, x.dtype, planes.shape[0], group_size, run))


def bcq_linear(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int,
               bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    y = bcq_product(x, planes, alpha, offset, in_features, group_size)
    return y if bias is None else (y.float() + bias.float()).to(y.dtype)


def bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    w = _triton_dequantize(planes.contiguous(), alpha.contiguous(), offset.contiguous(), in_features, group_size)
    return w.to(alpha.dtype)


def tiled_gemm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    xc, wc = x.contiguous(), weight.to(x.dtype).contiguous()
    run = lambda c: dense_gemm(xc, wc, group_m=c.group_m, **c.kernel_args())  # noqa: E731
    return run(choose_config(x.shape[0], weight.shape[0], x.shape[1], x.device, x.dtype, 8 * _act_bytes(x.dtype), None, run))


def _conv_out(x: torch.Tensor, out_nhwc: torch.Tensor) -> torch.Tensor:
    out = out_nhwc.permute(0, 3, 1, 2)
    return out if reference.is_channels_last(x) else out.contiguous()


def _conv_tiles(x: torch.Tensor, weight_shape: list[int], stride, padding, dilation, groups: int, bits: Optional[int] = None) -> dict:
    o, cg, r, s = weight_shape
    oh, ow = library.conv_out_hw(x.shape[2], x.shape[3], r, s, stride, padding, dilation)
    spec = spec_for_device(x.device if x.device.type == "cuda" else None)
    return conv_config(x.shape[0] * oh * ow, o // groups, cg * r * s, spec, _act_bytes(x.dtype), bits).kernel_args()


def im2win_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    tiles = _conv_tiles(x, list(weight.shape), stride, padding, dilation, groups)
    out = _triton_im2win(x.permute(0, 2, 3, 1).contiguous(), list(weight.shape), bias, stride, padding, dilation, groups,
                         weight=weight.to(x.dtype).contiguous(), **tiles)
    return _conv_out(x, out)


def im2win_conv2d_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, weight_shape: list[int], group_size: int, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    bcq = (planes.contiguous(), alpha.contiguous(), offset.contiguous(), group_size)
    tiles = _conv_tiles(x, weight_shape, stride, padding, dilation, groups, planes.shape[0])
    out = _triton_im2win(x.permute(0, 2, 3, 1).contiguous(), weight_shape, bias, stride, padding, dilation, groups, bcq=bcq, **tiles)
    return _conv_out(x, out)


KERNELS = {
    "bcq_dequantize": bcq_dequantize,
    "bcq_linear": bcq_linear,
    "lut_gemm": bcq_product,
    "tiled_gemm_bcq": bcq_product,
    "tiled_gemm": tiled_gemm,
    "im2win_conv2d": im2win_conv2d,
    "im2win_conv2d_bcq": im2win_conv2d_bcq,
}
library.register_family_kernels(library.TRITON_PREFIX, KERNELS, ("CPU", "CUDA"))
