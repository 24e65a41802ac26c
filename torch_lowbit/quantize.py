"""Weight quantizers. Every method produces the one BCQ format (format.py).

- "rtn":  uniform asymmetric round-to-nearest per group (min/max), converted exactly to BCQ:
          alpha_b = scale * 2^b / 2, offset = min + scale * (2^bits - 1) / 2.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from torch_lowbit.format import ALLOWED_SCALE_DTYPES, QuantizedWeight, check_bits, check_group_size, pack_signs, padded_layout

QuantizerFn = Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_METHODS: dict[str, QuantizerFn] = {}


def register_method(name: str) -> Callable[[QuantizerFn], QuantizerFn]:
    """A quantizer maps (w_groups [N, ngroups, G] fp32, bits, G) to (signs bool [bits, N, ngroups*G],
    alpha [bits, ngroups, N], offset [ngroups, N]) in fp32."""

    def deco(fn: QuantizerFn) -> QuantizerFn:
        _METHODS[name] = fn
        return fn

    return deco


def methods() -> list[str]:
    return sorted(_METHODS)


def uniform_to_bcq(codes: torch.Tensor, scale: torch.Tensor, low: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact BCQ form of w = low + scale * code, code in [0, 2^bits) (codes [N, ng, G], scale/low [N, ng])."""
    n, ng, g = codes.shape
    shifts = torch.arange(bits, device=codes.device).view(bits, 1, 1, 1)
    signs = ((codes.unsqueeze(0).to(torch.int32) >> shifts) & 1).bool().reshape(bits, n, ng * g)
    powers = (2.0 ** torch.arange(bits, device=codes.device, dtype=torch.float32)).view(bits, 1, 1)
    alpha = (scale.t().unsqueeze(0) * powers / 2)  # [bits, ng, N]
    offset = (low + scale * (2**bits - 1) / 2).t()  # [ng, N]
    return signs, alpha, offset


@register_method("rtn")
def _rtn(wg: torch.Tensor, bits: int, group_size: int):
    low, high = wg.amin(dim=-1), wg.amax(dim=-1)
    scale = ((high - low) / (2**bits - 1)).clamp_min(1e-10)
    codes = ((wg - low.unsqueeze(-1)) / scale.unsqueeze(-1)).round().clamp(0, 2**bits - 1)
    return uniform_to_bcq(codes, scale, low, bits)


def _pad_columns(w2d: torch.Tensor, kp: int) -> torch.Tensor:
    """Pad K to kp by repeating the last column, so padding never widens a group's range."""
    k = w2d.shape[1]
    if kp == k:
        return w2d
    return torch.cat([w2d, w2d[:, -1:].expand(-1, kp - k)], dim=1)


def quantize_weight(
    w: torch.Tensor,
    bits: int = 3,
    group_size: int = 128,
    method: str = "rtn",
    scale_dtype: torch.dtype = torch.float16,
) -> QuantizedWeight:
    """Quantize a float weight ([N, K] linear or [O, C/g, R, S] conv) to BCQ.

    Example:
        >>> import torch, torch_lowbit
        >>> w = torch.randn(256, 512)
        >>> qw = torch_lowbit.quantize_weight(w, bits=4, group_size=128)
        >>> err = (qw.dequantize() - w).norm() / w.norm()
        >>> bool(err < 0.12)
        True
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w: expected a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"w: expected a floating point weight, got {w.dtype}")
    if w.dim() not in (2, 4) or w.numel() == 0:
        raise ValueError(f"w: expected a non-empty 2-D [N, K] or 4-D [O, C/g, R, S] weight, got shape {tuple(w.shape)}")
    if w.is_meta:
        raise ValueError("w: cannot quantize a weight on the meta device (it has no values)")
    check_bits(bits)
    check_group_size(group_size)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {methods()}, got {method!r}")
    if scale_dtype not in ALLOWED_SCALE_DTYPES:
        raise ValueError(f"scale_dtype: expected torch.float16 or torch.float32, got {scale_dtype}")
    w2d = w.detach().reshape(w.shape[0], -1).float()
    if not torch.isfinite(w2d).all():
        raise ValueError("w: contains NaN or Inf")
    n, k = w2d.shape
    kp, g = padded_layout(k, group_size)
    wg = _pad_columns(w2d, kp).reshape(n, kp // g, g)
    signs, alpha, offset = _METHODS[method](wg, bits, g)
    planes = pack_signs(signs)
    return QuantizedWeight(planes, alpha.to(scale_dtype).contiguous(), offset.to(scale_dtype).contiguous(), tuple(w.shape), group_size, method)
