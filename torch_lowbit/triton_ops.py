"""The Triton kernels as torch ops (torch_lowbit::triton_*), so torch.compile traces them and
autograd works like the native ops. Same signatures as the schemas in csrc/schemas.cpp;
fakes and autograd come from _registrations.py. Imported on first use of backend="triton".
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from torch_lowbit import _registrations
from torch_lowbit.tile_model import TileConfig, rank_configs, spec_for_device


def _act_bytes(dtype: torch.dtype) -> int:
    return 4 if dtype == torch.float32 else 2


_tuned: dict[tuple, TileConfig] = {}


def choose_config(m: int, n: int, k: int, device: torch.device, dtype: torch.dtype, weight_bits: int,
                  group_size: Optional[int], run=None) -> TileConfig:
    """Tile sizes for one GEMM: the tile model's prediction (tile_model.py). With
    TORCH_LOWBIT_TRITON_AUTOTUNE=1 on a GPU, the model's top 8 are timed once per shape class
    (m rounded up to a power of two) and the fastest is kept for the process."""
    spec = spec_for_device(device if device.type == "cuda" else None)
    m_class = 1 << max(m - 1, 0).bit_length()
    key = (m_class, n, k, str(device), dtype, weight_bits, group_size)
    if key in _tuned:
        return _tuned[key]
    ranked = rank_configs(m_class, n, k, spec, _act_bytes(dtype), weight_bits, group_size)
    if not ranked:
        raise RuntimeError(f"no feasible Triton tile config for m={m}, n={n}, k={k} on {spec.name}")
    cfg = ranked[0][1]
    if run is not None and device.type == "cuda" and os.environ.get("TORCH_LOWBIT_TRITON_AUTOTUNE", "0") not in ("", "0"):
        from triton.testing import do_bench

        timed = [(do_bench(lambda c=c: run(c), warmup=5, rep=20), c) for _, c in ranked[:8]]
        cfg = min(timed, key=lambda t: t[0])[1]
    _tuned[key] = cfg
    return cfg


def _bcq_gemm(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm

    args = (_contiguous(x), _contiguous(planes), _contiguous(alpha), _contiguous(offset), in_features, group_size)
    run = lambda c: bcq_gemm(*args, split_k=c.split_k, group_m=c.group_m, **c.kernel_args())  # noqa: E731
    cfg = choose_config(x.shape[0], alpha.shape[2], planes.shape[2] * 8, x.device, x.dtype, planes.shape[0], group_size, run)
    return run(cfg)


def _contiguous(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous()


@torch.library.custom_op("torch_lowbit::triton_bcq_dequantize", mutates_args=())
def triton_bcq_dequantize(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    # An identity GEMM through the low-bit kernel: W = I_K @ W^T^T, exact in fp32.
    eye = torch.eye(in_features, dtype=torch.float32, device=planes.device)
    return _bcq_gemm(eye, planes, alpha, offset, in_features, group_size).t().contiguous().to(alpha.dtype)


@torch.library.custom_op("torch_lowbit::triton_lut_gemm", mutates_args=())
def triton_lut_gemm(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    return _bcq_gemm(x, planes, alpha, offset, in_features, group_size)


@torch.library.custom_op("torch_lowbit::triton_tiled_gemm_bcq", mutates_args=())
def triton_tiled_gemm_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    return _bcq_gemm(x, planes, alpha, offset, in_features, group_size)


@torch.library.custom_op("torch_lowbit::triton_tiled_gemm", mutates_args=())
def triton_tiled_gemm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    from torch_lowbit.triton_kernels.dense_gemm import dense_gemm

    xc, wc = _contiguous(x), _contiguous(weight.to(x.dtype))
    run = lambda c: dense_gemm(xc, wc, group_m=c.group_m, **c.kernel_args())  # noqa: E731
    return run(choose_config(x.shape[0], weight.shape[0], x.shape[1], x.device, x.dtype, 8 * _act_bytes(x.dtype), None, run))


def _conv_out(x: torch.Tensor, out_nhwc: torch.Tensor) -> torch.Tensor:
    out = out_nhwc.permute(0, 3, 1, 2)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out if channels_last else out.contiguous()


def _conv_tiles(x: torch.Tensor, weight_shape: list[int], stride, padding, dilation, groups: int) -> dict:
    # The implicit GEMM per group: rows = output pixels, columns = the group's output channels,
    # reduction = R * S * C/groups. Sized by the tile model like a dense GEMM (no split-K).
    o, cg, r, s = weight_shape
    oh, ow = _registrations.conv_out_hw(x.shape[2], x.shape[3], r, s, stride, padding, dilation)
    rows = max(x.shape[0] * oh * ow, 1)
    cfg = choose_config(rows, max(o // groups, 1), max(cg * r * s, 1), x.device, x.dtype, 8 * _act_bytes(x.dtype), None)
    return cfg.kernel_args()


@torch.library.custom_op("torch_lowbit::triton_im2win_conv2d", mutates_args=())
def triton_im2win_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d

    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    tiles = _conv_tiles(x, list(weight.shape), stride, padding, dilation, groups)
    out = im2win_conv2d(x_nhwc, list(weight.shape), bias, stride, padding, dilation, groups, weight=_contiguous(weight.to(x.dtype)), **tiles)
    return _conv_out(x, out)


@torch.library.custom_op("torch_lowbit::triton_im2win_conv2d_bcq", mutates_args=())
def triton_im2win_conv2d_bcq(x: torch.Tensor, planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor, weight_shape: list[int], group_size: int, bias: Optional[torch.Tensor], stride: list[int], padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d

    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    bcq = (_contiguous(planes), _contiguous(alpha), _contiguous(offset), group_size)
    tiles = _conv_tiles(x, weight_shape, stride, padding, dilation, groups)
    out = im2win_conv2d(x_nhwc, weight_shape, bias, stride, padding, dilation, groups, bcq=bcq, **tiles)
    return _conv_out(x, out)


_registrations.register(prefix="triton_")
