"""GPTQ (Frantar et al.): columns quantized one at a time in order of decreasing activation
energy, each one's error spread over the columns not yet quantized through the inverse Hessian
of the layer's inputs; then each row's grid refit to the output error.
"""
from __future__ import annotations

import math

import torch

from torch_lowbit.config import DATA_FREE_METHODS
from torch_lowbit.quantize.grids import FITTERS, code_signs, fit_in_row_chunks, grid_levels, pad_columns, uniform_grid

UNIFORM_GRIDS = ("rtn", "mse")  # grids of the form low + step * code (uniform_grid)
REFIT_CHUNK_BYTES = 4 << 20  # features of the rows refit at once: H's blocks are reused from cache


def _features(codes: torch.Tensor, bits: int, uniform: bool) -> torch.Tensor:
    """Least-squares features [N, K, F] of the grid parameters: uniform grids low + step * code
    ([code, 1]: step, low), free BCQ grids z + sum_b alpha_b * sign_b ([signs, 1]: alphas, z)."""
    if uniform:
        return torch.stack([codes.float(), torch.ones(codes.shape, device=codes.device)], dim=-1)
    signs = code_signs(bits, codes.device)[codes]
    return torch.cat([signs, torch.ones_like(signs[..., :1])], dim=-1)


def _grid_params(alpha: torch.Tensor, z: torch.Tensor, uniform: bool) -> torch.Tensor:
    """A grid (alpha [N, ng, bits], z [N, ng]) as the parameters of _features: [N, ng, F]."""
    if uniform:  # code 0's level is z - sum_b alpha_b; the step is 2 alpha_0
        return torch.stack([2 * alpha[..., 0], z - alpha.sum(-1)], dim=-1)
    return torch.cat([alpha, z.unsqueeze(-1)], dim=-1)


def refit_grid_hessian(w: torch.Tensor, codes: torch.Tensor, hessian: torch.Tensor, alpha: torch.Tensor, z: torch.Tensor,
                       group_size: int, uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For fixed codes [N, K], each row's grid refit to the layer output error
    e(Q) = tr((W - Q) H (W - Q)^T): per row, a least-squares problem in the row's grid parameters
    (free BCQ grids: bits + 1 per group; `uniform` grids keep their form low + step * code, 2 per
    group, so the kernels' uniform-group path still applies). Returns the refit grid (alpha
    [N, ng, bits], z [N, ng]) where it lowers the row's error below the given grid's, else
    the given one.

    The design is block-sparse (a column only touches its own group's parameters): per row the
    normal equations D^T H D are built one column block of H at a time (fp32 products on blocks
    of rows that stay in cache, the lower triangle mirrored), and the errors of both grids come
    from them too: e(p) = w H w - 2 p . D^T H w + p^T D^T H D p (fp64)."""
    n, k = w.shape
    bits = alpha.shape[-1]
    ng = math.ceil(k / group_size)
    g, kp = group_size, ng * group_size
    feats = torch.nn.functional.pad(_features(codes, bits, uniform), (0, 0, 0, kp - k))  # padded columns: no features
    nf = feats.shape[-1]
    h = torch.nn.functional.pad(hessian.float(), (0, kp - k, 0, kp - k))
    wp = torch.nn.functional.pad(w.float(), (0, kp - k))
    old = _grid_params(alpha, z, uniform).double()
    params = torch.empty(n, ng, nf, device=w.device)
    rows = max(1, REFIT_CHUNK_BYTES // (4 * nf * kp))
    for r0 in range(0, n, rows):
        r = min(rows, n - r0)
        fr = feats[r0 : r0 + r].view(r, ng, g, nf).transpose(-1, -2).contiguous()  # [r, a, j, k]
        gram = torch.empty(r, ng, nf, ng, nf, device=w.device)
        for b in range(ng):
            # (H D)[(a, k), (b, i)] for a >= b: features of column block b times H's block row b.
            x = (fr[:, b].reshape(r * nf, g) @ h[b * g : (b + 1) * g, b * g :]).view(r, nf, ng - b, g)
            blocks = torch.matmul(fr[:, b:], x.permute(0, 2, 3, 1))  # [r, a >= b, j, i]
            gram[:, b:, :, b, :] = blocks
            gram[:, b, :, b + 1 :, :] = blocks[:, 1:].permute(0, 3, 1, 2)
        hw = wp[r0 : r0 + r] @ h  # [r, Kp]
        rhs = torch.matmul(fr, hw.view(r, ng, g, 1)).reshape(r, ng * nf).double()
        gram = gram.view(r, ng * nf, ng * nf).double()
        ridge = 1e-6 * torch.diagonal(gram, dim1=1, dim2=2).mean(dim=1).view(-1, 1, 1) * torch.eye(ng * nf, dtype=gram.dtype, device=w.device)
        new = torch.linalg.solve(gram + ridge, rhs.unsqueeze(-1)).squeeze(-1)

        def err(p: torch.Tensor) -> torch.Tensor:  # e(p) - w H w, per row
            return ((gram @ p.unsqueeze(-1)).squeeze(-1) * p).sum(-1) - 2 * (p * rhs).sum(-1)

        p_old = old[r0 : r0 + r].reshape(r, ng * nf)
        better = (err(new) < err(p_old)).unsqueeze(-1)
        params[r0 : r0 + r] = torch.where(better, new, p_old).view(r, ng, nf).float()
    if uniform:
        return uniform_grid(params[..., 1], params[..., 0], bits)
    return params[..., :bits].contiguous(), params[..., bits].contiguous()


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
        alpha, z = refit_grid_hessian(w2d, codes, h, alpha, z, g, uniform=gptq_grid in UNIFORM_GRIDS)
    codes = pad_columns(codes.to(torch.uint8), kp).reshape(n, kp // g, g)
    return codes, alpha, z
