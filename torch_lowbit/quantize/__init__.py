"""Weight quantizers: every method produces the one BCQ format (format.py).

- "rtn", "mse", "bcq": data-free grids (grids.py);
- "gptq": calibrated (gptq.py), with the Hessians patch() collects from calibration batches
  (calibration.py). The grid comes from `gptq_grid` ("bcq" by default) fitted to the original
  weights.
"""
from __future__ import annotations

import torch

from torch_lowbit.config import DATA_FREE_METHODS, DEFAULT_METHOD, METHODS, QuantConfig
from torch_lowbit.format import QuantizedWeight, pack_codes, padded_layout
from torch_lowbit.quantize.gptq import gptq_quantize
from torch_lowbit.quantize.grids import FITTERS, fit_in_row_chunks, nearest_codes, pad_columns

__all__ = ["DATA_FREE_METHODS", "METHODS", "quantize_weight", "requantize_on_grid"]


def quantize_weight(
    w: torch.Tensor,
    bits: int = 3,
    group_size: int = 128,
    method: str = DEFAULT_METHOD,
    scale_dtype: torch.dtype = torch.float16,
    hessian: torch.Tensor | None = None,
    gptq_grid: str = "bcq",
    refit: bool = True,
    damp: float = 0.1,
) -> QuantizedWeight:
    """Quantize a float weight ([N, K] linear or [O, C/g, R, S] conv) to BCQ.

    `hessian` ([K, K], the sum of x^T x over the layer's calibration inputs) is required by
    method="gptq"; `gptq_grid` picks the grid GPTQ rounds to ("bcq", "mse" or "rtn"; the
    uniform ones, mse and rtn, stay uniform through the refit, so the kernels' faster
    uniform-group path applies; bcq is a little more accurate and slower to fit), `damp`
    the diagonal damping (a fraction of H's mean diagonal; 0.1 measured best on MiniLM among
    0.01/0.05/0.1/0.2), and `refit` whether each row's grid is refit to the output error after.

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
    QuantConfig(bits, group_size, method, scale_dtype)  # validates each setting
    w2d = w.detach().reshape(w.shape[0], -1).float()
    if not torch.isfinite(w2d.abs().amax()):  # amax propagates NaN; no [N, K] bool temporary
        raise ValueError("w: contains NaN or Inf")
    n, k = w2d.shape
    kp, g = padded_layout(k, group_size)
    wg = pad_columns(w2d, kp).reshape(n, kp // g, g)
    if method == "gptq":
        codes, alpha, z = gptq_quantize(w2d, wg, hessian, bits, gptq_grid=gptq_grid, refit=refit, damp=damp)
    else:
        codes, alpha, z = fit_in_row_chunks(FITTERS[method], wg, bits)
    _check_scales_fit(wg, alpha, z, bits, scale_dtype)
    return _pack(codes, alpha, z, tuple(w.shape), group_size, method, scale_dtype)


def _pack(codes: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor, shape: tuple[int, ...], group_size: int, method: str,
          scale_dtype: torch.dtype) -> QuantizedWeight:
    """QuantizedWeight of codes [N, ng, G] (uint8) on grids alpha [N, ng, bits], z [N, ng]."""
    n, ng, g = codes.shape
    bits = alpha.shape[-1]
    planes = pack_codes(codes.to(torch.uint8).reshape(n, ng * g), bits)
    alpha_t = alpha.permute(2, 1, 0).to(scale_dtype).contiguous()  # [bits, ng, N]
    offset_t = z.t().to(scale_dtype).contiguous()  # [ng, N]
    return QuantizedWeight(planes, alpha_t, offset_t, shape, group_size, method)


def requantize_on_grid(qw: QuantizedWeight, w: torch.Tensor) -> QuantizedWeight:
    """`w` (the weight's shape) rounded to the nearest level of qw's own grids: same scales, same
    settings, new codes. Weights w does not move by half a step keep their codes, so a small
    change (a merged LoRA delta) changes only the weights it moves across a level boundary.

    Example:
        >>> import torch, torch_lowbit
        >>> from torch_lowbit.quantize import requantize_on_grid
        >>> qw = torch_lowbit.quantize_weight(torch.randn(16, 64), bits=3, group_size=32)
        >>> torch.equal(requantize_on_grid(qw, qw.dequantize()).planes, qw.planes)
        True
    """
    if tuple(w.shape) != tuple(qw.shape):
        raise ValueError(f"w: expected shape {tuple(qw.shape)} (the quantized weight's), got {tuple(w.shape)}")
    if not torch.isfinite(w.float().abs().amax()):
        raise ValueError("w: contains NaN or Inf")
    n, k = qw.out_features, qw.in_features
    kp, g = qw.padded_in_features, qw.effective_group_size
    wg = pad_columns(w.detach().reshape(n, k).float().to(qw.planes.device), kp).reshape(n, kp // g, g)
    alpha = qw.alpha.float().permute(2, 1, 0)  # [N, ng, bits]
    z = qw.offset.float().t()  # [N, ng]
    codes = nearest_codes(wg, alpha, z).to(torch.uint8)
    return _pack(codes, alpha, z, tuple(qw.shape), qw.group_size, qw.method, qw.scale_dtype)


def _check_scales_fit(wg: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor, bits: int, scale_dtype: torch.dtype) -> None:
    """Refuse scales the scale dtype cannot hold: stored as float16, weights beyond ~6e4 overflow
    to inf and groups spanning less than ~1e-6 round to zero, both silently. The test: where the
    cast can move a group's weights by more than a quarter of the group's span (the result is no
    longer the weight that was quantized; ordinary rounding of fp16 scales moves them by ~1e-3
    of a step at 3 bits)."""
    if scale_dtype == torch.float32:
        return
    limit = torch.finfo(scale_dtype).max
    if alpha.abs().amax() > limit or z.abs().amax() > limit:
        raise ValueError(f"w: its scales reach {max(alpha.abs().amax().item(), z.abs().amax().item()):.3g}, beyond {scale_dtype}'s range ({limit:.0f}); pass scale_dtype=torch.float32")
    moved = (alpha.to(scale_dtype).float() - alpha).abs().sum(-1) + (z.to(scale_dtype).float() - z).abs()  # [N, ng]
    span = wg.amax(-1) - wg.amin(-1)
    bad = (span > 0) & (moved > span / 4)
    if bad.any():
        raise ValueError(
            f"w: {int(bad.sum())} groups (spans down to {span[bad].min().item():.3g}) move by more than a quarter of their span when "
            f"their scales are stored as {scale_dtype}; pass scale_dtype=torch.float32"
        )
