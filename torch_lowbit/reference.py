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


# ---- grid fitting (quantize/grids.py) ----
def zero_point_grid(low: torch.Tensor, high: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) of the grid scale * (c - zp), c in [0, 2^bits), spanning about
    [low, high] with zp an integer, so that 0 is a level (the range is first widened to hold 0)."""
    qmax = 2**bits - 1
    low, high = low.clamp(max=0), high.clamp(min=0)
    scale = ((high - low) / qmax).clamp_min(1e-10)
    return scale, (-low / scale).round().clamp(0, qmax)


def zero_point_codes(w: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes (float) of w [..., G] on the grids scale [...] * (c - zp [...])."""
    return ((w / scale.unsqueeze(-1)).round() + zp.unsqueeze(-1)).clamp(0, 2**bits - 1)


def gptq_block(w: torch.Tensor, hinv: torch.Tensor, levels: torch.Tensor, group_of: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ's column loop over one block: w [N, B] (the block's columns), hinv [B, B] (the
    block's part of the upper Cholesky factor of H^-1), levels [N, ng, L], group_of [B] (each
    column's group). Column by column: the code of the nearest level (first on ties), its error
    e = (w - level) / hinv[i, i] spread over the later columns (w[:, j] -= e * hinv[i, j]).
    Returns (codes [N, B] int64, e [N, B])."""
    w = w.float().clone()
    n, b = w.shape
    codes = torch.empty(n, b, dtype=torch.long, device=w.device)
    err = torch.empty(n, b, device=w.device)
    rows = torch.arange(n, device=w.device)
    for i in range(b):
        col = w[:, i]
        lv = levels[rows, group_of[i]].float()  # [N, L]
        c = (col.unsqueeze(1) - lv).abs().argmin(dim=1)
        q = lv.gather(1, c.unsqueeze(1)).squeeze(1)
        e = (col - q) / hinv[i, i]
        w[:, i:] -= e.unsqueeze(1) * hinv[i, i:].unsqueeze(0)
        codes[:, i], err[:, i] = c, e
    return codes, err


def zero_point_fit(w: torch.Tensor, bits: int, points: int, refits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each group (row of w [groups, G]): the zero-point grid (scale, zp) of lowest squared
    error among `points` clippings of [min, max] by ratios linspace(1, 0.5), each clipping
    followed by `refits` least-squares refits of the step for its codes (every candidate counts)."""
    w = w.float()
    low0, high0 = w.amin(dim=-1), w.amax(dim=-1)
    best_err = torch.full(low0.shape, float("inf"), device=w.device)
    best_scale, best_zp = zero_point_grid(low0, high0, bits)
    for p in torch.linspace(1.0, 0.5, points).tolist():
        scale, zp = zero_point_grid(low0 * p, high0 * p, bits)
        for _ in range(refits + 1):
            q = zero_point_codes(w, scale, zp, bits) - zp.unsqueeze(-1)
            err = ((q * scale.unsqueeze(-1) - w) ** 2).sum(-1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_scale = torch.where(better, scale, best_scale)
            best_zp = torch.where(better, zp, best_zp)
            den = (q * q).sum(-1)
            scale = torch.where(den > 0, (q * w).sum(-1) / den.clamp_min(1e-12), scale).clamp_min(1e-10)
    return best_scale, best_zp
