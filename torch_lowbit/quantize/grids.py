"""Data-free grid fitters. A group's quantization grid is `bits` scales alpha_b and an offset z:
the 2^bits levels z + sum_b alpha_b * (+1 or -1), where code c picks +1 for plane b when bit b
of c is set. Each fitter maps w [N, ng, G] fp32 to (codes [N, ng, G] long, alpha [N, ng, bits],
z [N, ng]).

- rtn: uniform asymmetric round-to-nearest per group (min/max) with an integer zero point:
  scale * (c - zp). Exact in BCQ form: alpha_b = scale * 2^b / 2, z = scale * ((2^bits-1)/2 - zp).
- mse (the default): the same grid with the clipping of [min, max] of lowest squared error and
  a least-squares refit of the step.
- bcq: non-uniform binary-coding quantization (LUT-GEMM paper): from mse's grid, alternating
  least squares of the alphas (the zero level pinned) and nearest-level codes.
"""
from __future__ import annotations

import torch

from torch_lowbit.reference import zero_point_codes, zero_point_grid

_ROW_CHUNK = 256  # rows per chunk where a method builds [rows, groups, G, 2^bits] temporaries


def code_signs(bits: int, device) -> torch.Tensor:
    """[2^bits, bits] float of +1/-1: entry (c, b) is +1 where bit b of c is set."""
    codes = torch.arange(2**bits, device=device).unsqueeze(1)
    return (((codes >> torch.arange(bits, device=device)) & 1) * 2 - 1).float()


def grid_levels(alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Levels [..., 2^bits] of grids alpha [..., bits], z [...]."""
    return z.unsqueeze(-1) + alpha @ code_signs(alpha.shape[-1], alpha.device).t()


def nearest_codes(w: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Code of the nearest level for w [N, ng, G] on grids alpha [N, ng, bits], z [N, ng]."""
    out = torch.empty(w.shape, dtype=torch.long, device=w.device)
    for r0 in range(0, w.shape[0], _ROW_CHUNK):
        sl = slice(r0, r0 + _ROW_CHUNK)
        levels = grid_levels(alpha[sl], z[sl])  # [n, ng, L]
        out[sl] = (w[sl].unsqueeze(-1) - levels.unsqueeze(-2)).abs().argmin(dim=-1)
    return out


def dequantize_codes(codes: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return torch.gather(grid_levels(alpha, z), -1, codes)


def uniform_grid(low: torch.Tensor, scale: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The BCQ grid of w = low + scale * c, c in [0, 2^bits)."""
    powers = 2.0 ** torch.arange(bits, device=low.device, dtype=torch.float32)
    return scale.unsqueeze(-1) * powers / 2, low + scale * (2**bits - 1) / 2


# ---- data-free fitters: w [N, ng, G] fp32 -> (codes [N, ng, G] long, alpha [N, ng, bits], z [N, ng]) ----
# Every fitter keeps 0 exactly on its grid. Why (measured on all-MiniLM-L6-v2, dev/README.md):
# input channels with large activations tend to have small weight columns; a grid without 0
# rounds those small weights by up to half a step and the activations multiply that error,
# while with 0 on the grid they round to (near) zero. Same Frobenius error, much lower output
# error: MiniLM 3-bit mean cosine 0.79 -> 0.85 for min/max alone.
def _zero_point_bcq(codes, scale, zp, bits):
    """BCQ form of scale * (c - zp): alpha_b = scale * 2^b / 2, z = scale * ((2^bits - 1) / 2 - zp)."""
    return (codes.long(), *uniform_grid(-zp * scale, scale, bits))


def fit_rtn(w: torch.Tensor, bits: int):
    scale, zp = zero_point_grid(w.amin(dim=-1), w.amax(dim=-1), bits)
    return _zero_point_bcq(zero_point_codes(w, scale, zp, bits), scale, zp, bits)


MSE_CLIP_POINTS = 12  # clip ratios 1.0 .. 0.5; 10-40 points measured within 0.002 MiniLM cosine


def fit_mse(w: torch.Tensor, bits: int, grid_points: int = MSE_CLIP_POINTS, refits: int = 1):
    """Per group, the clipping of [min, max] whose zero-point grid has the lowest squared error,
    each clipping followed by `refits` least-squares refits of the step
    (the search: torch_lowbit.reference.zero_point_fit, compiled on CPU)."""
    n, ng, g = w.shape
    scale, zp = torch.ops.torch_lowbit.zero_point_fit(w.reshape(n * ng, g).contiguous(), bits, grid_points, refits)
    scale, zp = scale.view(n, ng), zp.view(n, ng)
    return _zero_point_bcq(zero_point_codes(w, scale, zp, bits), scale, zp, bits)


def _lstsq_grid_through_zero(w: torch.Tensor, codes: torch.Tensor, zero_code: torch.Tensor, bits: int):
    """Least-squares alphas for fixed codes with level `zero_code` [N, ng] pinned at 0:
    w ~ (S - s0) @ alpha per group, z = -s0 . alpha."""
    table = code_signs(bits, w.device)
    s0 = table[zero_code]  # [N, ng, bits]
    design = (table[codes] - s0.unsqueeze(-2)).double()  # [N, ng, G, bits]
    gram = design.transpose(-1, -2) @ design
    rhs = design.transpose(-1, -2) @ w.double().unsqueeze(-1)
    # A small ridge keeps degenerate sign patterns (a plane constant, two equal planes) solvable;
    # the caller keeps a refit only where it lowers the error.
    ridge = 1e-6 * w.shape[-1] * torch.eye(bits, device=w.device, dtype=torch.float64)
    alpha = torch.linalg.solve(gram + ridge, rhs).squeeze(-1).float()
    return alpha, -(s0 * alpha).sum(-1)


def fit_bcq(w: torch.Tensor, bits: int, iters: int = 15):
    """Non-uniform BCQ through zero: from the best zero-point grid (itself a BCQ grid), free the
    alphas by alternating least squares with its zero level pinned, and nearest-level codes."""
    codes, alpha, z = fit_mse(w, bits)
    # The code of the level at 0: bit b set where that level's sign is +1.
    levels = grid_levels(alpha, z)
    zero_code = levels.abs().argmin(dim=-1)
    err = ((dequantize_codes(codes, alpha, z) - w) ** 2).sum(-1)
    for _ in range(iters):
        new_alpha, new_z = _lstsq_grid_through_zero(w, codes, zero_code, bits)
        new_codes = nearest_codes(w, new_alpha, new_z)
        new_err = ((dequantize_codes(new_codes, new_alpha, new_z) - w) ** 2).sum(-1)
        better = new_err < err
        err = torch.where(better, new_err, err)
        alpha = torch.where(better.unsqueeze(-1), new_alpha, alpha)
        z = torch.where(better, new_z, z)
        codes = torch.where(better.unsqueeze(-1), new_codes, codes)
    return codes, alpha, z


FITTERS = {"rtn": fit_rtn, "mse": fit_mse, "bcq": fit_bcq}


def fit_in_row_chunks(fit, wg: torch.Tensor, bits: int):
    """Run a data-free fitter over blocks of rows, so its temporaries (sign designs, level
    tables: several times the block's size) stay far below one layer's float copy."""
    rows = max(1, (16 * 2**20) // max(wg.shape[1] * wg.shape[2] * 4, 1))  # ~16 MiB of weights a block
    parts = []
    for r0 in range(0, wg.shape[0], rows):
        codes, alpha, z = fit(wg[r0 : r0 + rows], bits)
        parts.append((codes.to(torch.uint8), alpha, z))  # codes < 2^bits <= 256
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


def pad_columns(w2d: torch.Tensor, kp: int) -> torch.Tensor:
    """Pad K to kp by repeating the last column, so padding never widens a group's range."""
    k = w2d.shape[1]
    if kp == k:
        return w2d
    return torch.cat([w2d, w2d[:, -1:].expand(-1, kp - k)], dim=1)
