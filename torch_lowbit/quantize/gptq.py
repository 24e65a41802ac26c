"""GPTQ (Frantar et al.): columns quantized one at a time in order of decreasing activation
energy, each one's error spread over the columns not yet quantized through the inverse Hessian
of the layer's inputs; then each row's grid refit to the output error.
"""
from __future__ import annotations

import math

import torch

from torch_lowbit.config import DATA_FREE_METHODS
from torch_lowbit.quantize.grids import FITTERS, code_signs, dequantize_codes, fit_in_row_chunks, grid_levels, pad_columns


def refit_grid_hessian(w: torch.Tensor, codes: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grids (alpha [N, ng, bits], z [N, ng]) minimising the layer output error
    tr((W - Q) H (W - Q)^T) for fixed codes [N, K]: per row, a least-squares problem in the
    row's ng * (bits + 1) grid parameters, weighted by H."""
    n, k = w.shape
    ng = math.ceil(k / group_size)
    signs = code_signs(bits, w.device)[codes]  # [N, K, bits]
    feats = torch.cat([signs, torch.ones_like(signs[..., :1])], dim=-1)  # [N, K, bits+1]
    onehot = torch.nn.functional.one_hot(torch.arange(k, device=w.device) // group_size, ng).float()  # [K, ng]
    h = hessian.double()
    alpha = torch.empty(n, ng, bits, device=w.device)
    z = torch.empty(n, ng, device=w.device)
    # Rows per block so the float64 design [rows, K, ng * (bits + 1)] stays near 64 MiB.
    chunk = max(1, (64 * 2**20) // (8 * k * ng * (bits + 1)))
    for r0 in range(0, n, chunk):
        sl = slice(r0, r0 + chunk)
        # design[r, k, g, j] = feats[r, k, j] * onehot[k, g] -> [rows, K, ng * (bits + 1)]
        design = (feats[sl].unsqueeze(2) * onehot.view(1, k, ng, 1)).reshape(feats[sl].shape[0], k, -1).double()
        hd = torch.einsum("kl,rlp->rkp", h, design)
        gram = design.transpose(1, 2) @ hd
        rhs = hd.transpose(1, 2) @ w[sl].double().unsqueeze(-1)
        ridge = 1e-6 * torch.diagonal(gram, dim1=1, dim2=2).mean(dim=1).view(-1, 1, 1) * torch.eye(gram.shape[-1], dtype=gram.dtype, device=w.device)
        sol = torch.linalg.solve(gram + ridge, rhs).squeeze(-1).float().view(-1, ng, bits + 1)
        alpha[sl], z[sl] = sol[..., :bits], sol[..., bits]
    return alpha, z


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
    levels = grid_levels(alpha, z)  # [N, ng, L]
    group_of = perm // group_size
    codes = torch.empty(n, k, dtype=torch.long, device=w.device)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i]
            lv = levels[:, group_of[i1 + i], :]
            c = (col.unsqueeze(1) - lv).abs().argmin(dim=1)
            q = lv.gather(1, c.unsqueeze(1)).squeeze(1)
            codes[:, i1 + i] = c
            e = (col - q) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) * h1[i, i:].unsqueeze(0)
            err1[:, i] = e
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
        new_alpha, new_z = refit_grid_hessian(w2d, codes, h, bits, g)
        q_new = dequantize_codes(pad_columns(codes, kp).reshape(n, kp // g, g), new_alpha, new_z).reshape(n, kp)[:, :k]
        better = output_error(w2d, q_new, h) < output_error(w2d, q_old, h)
        alpha = torch.where(better.view(n, 1, 1), new_alpha, alpha)
        z = torch.where(better.view(n, 1), new_z, z)
    codes = pad_columns(codes.to(torch.uint8), kp).reshape(n, kp // g, g)
    return codes, alpha, z
