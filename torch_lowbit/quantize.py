"""Weight quantizers. Every method produces the one BCQ format (format.py).

A group's quantization grid is `bits` scales alpha_b and an offset z: the 2^bits levels
z + sum_b alpha_b * (+1 or -1), where code c picks +1 for plane b when bit b of c is set.

- "rtn":  uniform asymmetric round-to-nearest per group (min/max). Exact in BCQ form:
          alpha_b = scale * 2^b / 2, z = low + scale * (2^bits - 1) / 2.
- "mse":  data-free optimized uniform grid (HQQ-like in spirit): per group, the clipping of
          [min, max] with the lowest squared error, then alternating least-squares refits of
          (low, scale) against the codes.
- "bcq":  non-uniform binary-coding quantization (LUT-GEMM paper): greedy residual init, then
          alternating least squares of (alphas, offset) given signs and nearest-level signs given
          the grid.
- "gptq": calibrated (Frantar et al.): columns quantized one at a time in order of decreasing
          activation energy, each one's error spread over the columns not yet quantized through
          the inverse Hessian of the layer's inputs. Needs `hessian` (patch() collects it from
          `calibration` batches). The grid comes from `gptq_grid` ("bcq" by default) fitted to the
          original weights.
"""
from __future__ import annotations

import math

import torch

from torch_lowbit.format import ALLOWED_SCALE_DTYPES, QuantizedWeight, check_bits, check_group_size, pack_signs, padded_layout

METHODS = ("rtn", "mse", "bcq", "gptq")
DATA_FREE_METHODS = ("rtn", "mse", "bcq")
_ROW_CHUNK = 256  # rows per chunk where a method builds [rows, groups, G, 2^bits] temporaries


# ---- grids ----
def _code_bits(bits: int, device) -> torch.Tensor:
    """[2^bits, bits] float of +1/-1: entry (c, b) is +1 where bit b of c is set."""
    codes = torch.arange(2**bits, device=device).unsqueeze(1)
    return (((codes >> torch.arange(bits, device=device)) & 1) * 2 - 1).float()


def grid_levels(alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Levels [..., 2^bits] of grids alpha [..., bits], z [...]."""
    return z.unsqueeze(-1) + alpha @ _code_bits(alpha.shape[-1], alpha.device).t()


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
    signs = _code_bits(bits, w.device)[codes]  # [N, ng, G, bits]
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


_FITTERS = {"rtn": fit_rtn, "mse": fit_mse, "bcq": fit_bcq}


# ---- GPTQ ----
def refit_grid_hessian(w: torch.Tensor, codes: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grids (alpha [N, ng, bits], z [N, ng]) minimising the layer output error
    tr((W - Q) H (W - Q)^T) for fixed codes [N, K]: per row, a least-squares problem in the
    row's ng * (bits + 1) grid parameters, weighted by H."""
    n, k = w.shape
    ng = math.ceil(k / group_size)
    signs = _code_bits(bits, w.device)[codes]  # [N, K, bits]
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


# ---- entry point ----
def _fit_in_row_chunks(fit, wg: torch.Tensor, bits: int):
    """Run a data-free fitter over blocks of rows, so its temporaries (sign designs, level
    tables: several times the block's size) stay far below one layer's float copy."""
    rows = max(1, (16 * 2**20) // max(wg.shape[1] * wg.shape[2] * 4, 1))  # ~16 MiB of weights a block
    parts = []
    for r0 in range(0, wg.shape[0], rows):
        codes, alpha, z = fit(wg[r0 : r0 + rows], bits)
        parts.append((codes.to(torch.uint8), alpha, z))  # codes < 2^bits <= 256
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


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
    hessian: torch.Tensor | None = None,
    gptq_grid: str = "bcq",
    refit: bool = True,
    damp: float = 0.1,
) -> QuantizedWeight:
    """Quantize a float weight ([N, K] linear or [O, C/g, R, S] conv) to BCQ.

    `hessian` ([K, K], the sum of x^T x over the layer's calibration inputs) is required by
    method="gptq"; `gptq_grid` picks the grid GPTQ rounds to ("bcq", "mse" or "rtn"), `damp`
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
    check_bits(bits)
    check_group_size(group_size)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if scale_dtype not in ALLOWED_SCALE_DTYPES:
        raise ValueError(f"scale_dtype: expected torch.float16 or torch.float32, got {scale_dtype}")
    w2d = w.detach().reshape(w.shape[0], -1).float()
    if not torch.isfinite(w2d).all():
        raise ValueError("w: contains NaN or Inf")
    n, k = w2d.shape
    kp, g = padded_layout(k, group_size)
    wg = _pad_columns(w2d, kp).reshape(n, kp // g, g)
    if method == "gptq":
        if hessian is None:
            raise ValueError("hessian: method='gptq' needs the layer's input Hessian (patch(..., calibration=batches) collects it)")
        if not isinstance(hessian, torch.Tensor) or tuple(hessian.shape) != (k, k):
            raise ValueError(f"hessian: expected a [{k}, {k}] tensor, got {getattr(hessian, 'shape', hessian)!r}")
        if gptq_grid not in DATA_FREE_METHODS:
            raise ValueError(f"gptq_grid: expected one of {DATA_FREE_METHODS}, got {gptq_grid!r}")
        _, alpha, z = _fit_in_row_chunks(_FITTERS[gptq_grid], wg, bits)
        h = hessian.to(w2d.device).float()
        codes = gptq_codes(w2d, h, alpha, z, g, damp=damp)
        if refit:
            # Refit each row's grid to the output error for the GPTQ codes; keep it per row
            # only where that error drops.
            q_old = dequantize_codes(_pad_columns(codes, kp).reshape(n, kp // g, g), alpha, z).reshape(n, kp)[:, :k]
            new_alpha, new_z = refit_grid_hessian(w2d, codes, h, bits, g)
            q_new = dequantize_codes(_pad_columns(codes, kp).reshape(n, kp // g, g), new_alpha, new_z).reshape(n, kp)[:, :k]
            better = output_error(w2d, q_new, h) < output_error(w2d, q_old, h)
            alpha = torch.where(better.view(n, 1, 1), new_alpha, alpha)
            z = torch.where(better.view(n, 1), new_z, z)
        codes = _pad_columns(codes.to(torch.uint8), kp).reshape(n, kp // g, g)
    else:
        codes, alpha, z = _fit_in_row_chunks(_FITTERS[method], wg, bits)
    shifts = torch.arange(bits, device=codes.device, dtype=torch.uint8).view(bits, 1, 1)
    signs = ((codes.reshape(1, n, kp) >> shifts) & 1).bool()  # uint8 math: [bits, N, Kp] bytes
    planes = pack_signs(signs)
    alpha_t = alpha.permute(2, 1, 0).to(scale_dtype).contiguous()  # [bits, ng, N]
    offset_t = z.t().to(scale_dtype).contiguous()  # [ng, N]
    return QuantizedWeight(planes, alpha_t, offset_t, tuple(w.shape), group_size, method)
