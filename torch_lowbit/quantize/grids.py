"""Data-free grid fitters. A group's quantization grid is `bits` scales alpha_b and an offset z:
the 2^bits levels z + sum_b alpha_b * (+1 or -1), where code c picks +1 for plane b when bit b
of c is set. Each fitter maps w [N, ng, G] fp32 to (codes [N, ng, G] long, alpha [N, ng, bits],
z [N, ng]).

- rtn: uniform asymmetric round-to-nearest per group (min/max). Exact in BCQ form:
  alpha_b = scale * 2^b / 2, z = low + scale * (2^bits - 1) / 2.
- mse: data-free optimized uniform grid (HQQ-like in spirit): per group, the clipping of
  [min, max] with the lowest squared error, then alternating least-squares refits of
  (low, scale) against the codes.
- bcq: non-uniform binary-coding quantization (LUT-GEMM paper): greedy residual init, then
  alternating least squares of (alphas, offset) given signs and nearest-level signs given the grid.
"""
from __future__ import annotations

import torch
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


def _uniform_codes(w, low, scale, bits):
    return ((w - low.unsqueeze(-1)) / scale.unsqueeze(-1)).round().clamp(0, 2**bits - 1)


def _uniform_sq_err(w, low, scale, bits):
    """Per-group squared error of rounding w to the grid low + scale * code."""
    q = _uniform_codes(w, low, scale, bits)
    return ((low.unsqueeze(-1) + scale.unsqueeze(-1) * q - w) ** 2).sum(-1)


# ---- data-free fitters: w [N, ng, G] fp32 -> (codes [N, ng, G] long, alpha [N, ng, bits], z [N, ng]) ----
def fit_rtn(w: torch.Tensor, bits: int):
    low, high = w.amin(dim=-1), w.amax(dim=-1)
    scale = ((high - low) / (2**bits - 1)).clamp_min(1e-10)
    codes = _uniform_codes(w, low, scale, bits)
    return (codes.long(), *uniform_grid(low, scale, bits))


def fit_mse(w: torch.Tensor, bits: int, grid_points: int = 40, refits: int = 4):
    qmax = 2**bits - 1
    low0, high0 = w.amin(dim=-1), w.amax(dim=-1)
    best_err = torch.full(low0.shape, float("inf"), device=w.device)
    best_low, best_scale = low0.clone(), ((high0 - low0) / qmax).clamp_min(1e-10)
    # Clip [min, max] toward its center by ratio p; keep the per-group best.
    center = (low0 + high0) / 2
    for p in torch.linspace(1.0, 0.5, grid_points).tolist():
        low = center - (center - low0) * p
        scale = ((high0 - low0) * p / qmax).clamp_min(1e-10)
        err = _uniform_sq_err(w, low, scale, bits)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_low = torch.where(better, low, best_low)
        best_scale = torch.where(better, scale, best_scale)
    low, scale = best_low, best_scale
    # Alternate: least-squares (low, scale) for fixed codes, then re-round; keep improvements only.
    for _ in range(refits):
        q = _uniform_codes(w, low, scale, bits)
        qm, wm = q.mean(-1, keepdim=True), w.mean(-1, keepdim=True)
        var = ((q - qm) ** 2).sum(-1)
        new_scale = torch.where(var > 0, ((q - qm) * (w - wm)).sum(-1) / var.clamp_min(1e-12), scale).clamp_min(1e-10)
        new_low = wm.squeeze(-1) - new_scale * qm.squeeze(-1)
        err = _uniform_sq_err(w, new_low, new_scale, bits)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        low = torch.where(better, new_low, low)
        scale = torch.where(better, new_scale, scale)
    codes = _uniform_codes(w, low, scale, bits)
    return (codes.long(), *uniform_grid(low, scale, bits))


def _lstsq_grid(w: torch.Tensor, codes: torch.Tensor, bits: int):
    """Least-squares alphas and offset for fixed codes: w ~ [S, 1] @ [alpha; z] per group."""
    signs = code_signs(bits, w.device)[codes]  # [N, ng, G, bits]
    design = torch.cat([signs, torch.ones_like(signs[..., :1])], dim=-1)  # [N, ng, G, bits+1]
    design = design.double()
    gram = design.transpose(-1, -2) @ design
    rhs = design.transpose(-1, -2) @ w.double().unsqueeze(-1)
    # A small ridge keeps degenerate sign patterns (a plane all +1, two equal planes) solvable;
    # the caller keeps a refit only where it lowers the error.
    ridge = 1e-6 * w.shape[-1] * torch.eye(bits + 1, device=w.device, dtype=torch.float64)
    sol = torch.linalg.solve(gram + ridge, rhs).squeeze(-1).float()
    return sol[..., :bits], sol[..., bits]


def fit_bcq(w: torch.Tensor, bits: int, iters: int = 15):
    # Start from the best uniform grid (itself a BCQ grid), then free the alphas.
    codes, alpha, z = fit_mse(w, bits)
    err = ((dequantize_codes(codes, alpha, z) - w) ** 2).sum(-1)
    for _ in range(iters):
        new_alpha, new_z = _lstsq_grid(w, codes, bits)
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
