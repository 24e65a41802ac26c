"""GPTQ (Frantar et al.): columns quantized one at a time in order of decreasing activation
energy, each one's error spread over the columns not yet quantized through the inverse Hessian
of the layer's inputs; then each row's grid refit to the output error.
"""
from __future__ import annotations

import math

import torch

from torch_lowbit.config import DATA_FREE_METHODS
from torch_lowbit.quantize.grids import FITTERS, code_signs, dequantize_codes, fit_in_row_chunks, grid_levels, pad_columns, uniform_grid

UNIFORM_GRIDS = ("rtn", "mse")  # grids of the form low + step * code (uniform_grid)
DESIGN_DTYPE = torch.float32  # H @ design in the refit


def refit_grid_hessian(w: torch.Tensor, codes: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int,
                       uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Grids (alpha [N, ng, bits], z [N, ng]) minimising the layer output error
    tr((W - Q) H (W - Q)^T) for fixed codes [N, K]: per row, a least-squares problem in the
    row's grid parameters, weighted by H. Free BCQ grids have bits + 1 per group (the alphas and
    z); `uniform` grids keep their form, low + step * code, with 2 per group (so the kernels'
    uniform-group path still applies).

    The design is block-sparse (a column only touches its own group's parameters), so H is
    applied per group: H[:, group] @ features[group] costs K^2 x features per row, not K^2 x all
    parameters of the row."""
    n, k = w.shape
    ng = math.ceil(k / group_size)
    kp = ng * group_size
    if uniform:
        feats = torch.stack([codes.float(), torch.ones(n, k, device=w.device)], dim=-1)  # [N, K, 2]
    else:
        signs = code_signs(bits, w.device)[codes]  # [N, K, bits]
        feats = torch.cat([signs, torch.ones_like(signs[..., :1])], dim=-1)  # [N, K, bits+1]
    nf = feats.shape[-1]
    feats = torch.nn.functional.pad(feats, (0, 0, 0, kp - k)).to(DESIGN_DTYPE)  # padded columns: no features
    h = torch.nn.functional.pad(hessian.to(DESIGN_DTYPE), (0, kp - k, 0, kp - k))
    h_by_group = h.view(kp, ng, group_size).permute(1, 0, 2)  # [ng, Kp, G]
    wd = torch.nn.functional.pad(w.to(DESIGN_DTYPE), (0, kp - k))
    params = torch.empty(n, ng, nf, device=w.device)
    # Rows per block so H @ design ([rows, Kp, ng, F]) stays near 64 MiB.
    chunk = max(1, (64 * 2**20) // (feats.element_size() * kp * ng * nf))
    for r0 in range(0, n, chunk):
        f = feats[r0 : r0 + chunk]  # [r, Kp, F]
        r = f.shape[0]
        f_by_group = f.view(r, ng, group_size, nf).permute(1, 2, 0, 3).reshape(ng, group_size, r * nf)
        hd = torch.bmm(h_by_group, f_by_group).view(ng, ng, group_size, r, nf)  # [b, a, k, r, i]: (H D)[(a, k), (b, i)] of row r
        gram = torch.einsum("rakj,bakri->rajbi", f.view(r, ng, group_size, nf), hd).reshape(r, ng * nf, ng * nf).double()
        rhs = torch.einsum("bakri,rak->rbi", hd, wd[r0 : r0 + r].view(r, ng, group_size)).reshape(r, ng * nf, 1).double()
        ridge = 1e-6 * torch.diagonal(gram, dim1=1, dim2=2).mean(dim=1).view(-1, 1, 1) * torch.eye(ng * nf, dtype=gram.dtype, device=w.device)
        params[r0 : r0 + r] = torch.linalg.solve(gram + ridge, rhs).view(r, ng, nf).float()
    if uniform:
        return uniform_grid(params[..., 1], params[..., 0], bits)
    return params[..., :bits], params[..., bits]


def output_error(w: torch.Tensor, q: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """Per-row tr((w - q) H (w - q)^T) terms."""
    d = (w - q).double()
    return ((d @ hessian.double()) * d).sum(dim=1)


def gptq_codes(w: torch.Tensor, hessian: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor, group_size: int, damp: float = 0.01, block: int = 128) -> torch.Tensor:
    """Codes [N, K] for w [N, K] on fixed per-group grids (alpha [N, ng, bits], z [N, ng])."""
    w = w.clone()
    n, k = w.shape
    h = hessian.to(torch.float64).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.diag(h).mean() * torch.eye(k, dtype=h.dtype, device=h.device)
    perm = torch.argsort(torch.diag(h), descending=True)  # act order
    w = w[:, perm]
    h = h[perm][:, perm]
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    levels = grid_levels(alpha, z).contiguous()  # [N, ng, L]
    group_of = perm // group_size
    codes = torch.empty(n, k, dtype=torch.long, device=w.device)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        c, err1 = torch.ops.torch_lowbit.gptq_block(w[:, i1:i2].contiguous(), hinv[i1:i2, i1:i2].contiguous(), levels,
                                                    group_of[i1:i2].contiguous())
        codes[:, i1:i2] = c
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    out = torch.empty_like(codes)
    out[:, perm] = codes
    return out


def gptq_quantize(w2d: torch.Tensor, wg: torch.Tensor, hessian: torch.Tensor | None, bits: int, gptq_grid: str = "bcq",
                  refit: bool = True, damp: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes [N, ng, G] uint8, alpha [N, ng, bits], z [N, ng]) for w2d [N, K] fp32, whose padded
    groups are wg [N, ng, G], given the layer's input Hessian [K, K]."""
    n, k = w2d.shape
    g = wg.shape[2]
    kp = wg.shape[1] * g
    if hessian is None:
        raise ValueError("hessian: method='gptq' needs the layer's input Hessian (patch(..., calibration=batches) collects it)")
    if not isinstance(hessian, torch.Tensor) or tuple(hessian.shape) != (k, k):
        raise ValueError(f"hessian: expected a [{k}, {k}] tensor, got {getattr(hessian, 'shape', hessian)!r}")
    if gptq_grid not in DATA_FREE_METHODS:
        raise ValueError(f"gptq_grid: expected one of {DATA_FREE_METHODS}, got {gptq_grid!r}")
    _, alpha, z = fit_in_row_chunks(FITTERS[gptq_grid], wg, bits)
    h = hessian.to(w2d.device).float()
    codes = gptq_codes(w2d, h, alpha, z, g, damp=damp)
    if refit:
        # Refit each row's grid to the output error for the GPTQ codes; keep it per row
        # only where that error drops.
        q_old = dequantize_codes(pad_columns(codes, kp).reshape(n, kp // g, g), alpha, z).reshape(n, kp)[:, :k]
        new_alpha, new_z = refit_grid_hessian(w2d, codes, h, bits, g, uniform=gptq_grid in UNIFORM_GRIDS)
        q_new = dequantize_codes(pad_columns(codes, kp).reshape(n, kp // g, g), new_alpha, new_z).reshape(n, kp)[:, :k]
        better = output_error(w2d, q_new, h) < output_error(w2d, q_old, h)
        alpha = torch.where(better.view(n, 1, 1), new_alpha, alpha)
        z = torch.where(better.view(n, 1), new_z, z)
    codes = pad_columns(codes.to(torch.uint8), kp).reshape(n, kp // g, g)
    return codes, alpha, z
