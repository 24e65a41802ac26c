"""GPTQ's pieces (quantize/gptq.py): the compiled gptq_block op against its plain-PyTorch
reference, the block-sparse grid refit against the dense least-squares problem it solves, and the
uniform refit keeping the kernels' uniform-group form."""
import math

import pytest
import torch

from torch_lowbit import reference
from torch_lowbit.quantize import gptq
from torch_lowbit.quantize.grids import code_signs, dequantize_codes, fit_mse, pad_columns


def _hinv(b: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(3 * b, b, generator=gen) * torch.rand(b, generator=gen) * 3
    h = x.t() @ x + 0.1 * torch.eye(b)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h.double())), upper=True).float()


@pytest.mark.parametrize("n,b,ng,levels", [(1, 1, 1, 2), (37, 128, 3, 8), (5, 17, 2, 4), (64, 100, 12, 256), (19, 64, 1, 3)])
def test_gptq_block_matches_reference(n, b, ng, levels):
    gen = torch.Generator().manual_seed(n * 1000 + b)
    w = torch.randn(n, b, generator=gen)
    lv = torch.sort(torch.randn(n, ng, levels, generator=gen), dim=-1).values
    lv[0, 0, -1] = lv[0, 0, 0]  # a repeated level: the first one wins, as torch.argmin's
    group_of = torch.randint(0, ng, (b,), generator=gen)
    hinv = _hinv(b, gen)
    codes, err = torch.ops.torch_lowbit.gptq_block(w, hinv, lv, group_of)
    ref_codes, ref_err = reference.gptq_block(w, hinv, lv, group_of)
    # Same arithmetic in the same order (no FMA contraction): identical codes and errors.
    assert torch.equal(codes, ref_codes)
    assert torch.equal(err, ref_err)
    assert codes.dtype == torch.long and (codes >= 0).all() and (codes < levels).all()


def test_gptq_block_rejects_bad_arguments():
    w, h, lv, g = torch.randn(4, 8), torch.eye(8), torch.randn(4, 2, 8), torch.zeros(8, dtype=torch.long)
    with pytest.raises(RuntimeError, match="hinv: expected"):
        torch.ops.torch_lowbit.gptq_block(w, torch.eye(7), lv, g)
    with pytest.raises(RuntimeError, match="levels: expected"):
        torch.ops.torch_lowbit.gptq_block(w, h, torch.randn(3, 2, 8), g)
    with pytest.raises(RuntimeError, match="group_of: expected int64"):
        torch.ops.torch_lowbit.gptq_block(w, h, lv, g.int())
    with pytest.raises(RuntimeError, match="group_of: entries"):
        torch.ops.torch_lowbit.gptq_block(w, h, lv, torch.full((8,), 2, dtype=torch.long))


def _dense_refit(w, codes, h, bits, group_size):
    """The refit's least squares written out densely: one design column per (group, feature)."""
    n, k = w.shape
    ng = math.ceil(k / group_size)
    feats = torch.cat([code_signs(bits, w.device)[codes], torch.ones(n, k, 1)], dim=-1).double()
    onehot = torch.nn.functional.one_hot(torch.arange(k) // group_size, ng).double()
    alpha, z = torch.empty(n, ng, bits), torch.empty(n, ng)
    for r in range(n):
        d = (feats[r].unsqueeze(1) * onehot.unsqueeze(2)).reshape(k, -1)  # [K, ng * (bits + 1)]
        gram = d.t() @ h.double() @ d
        gram += 1e-6 * torch.diagonal(gram).mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
        sol = torch.linalg.solve(gram, d.t() @ h.double() @ w[r].double()).view(ng, bits + 1).float()
        alpha[r], z[r] = sol[:, :bits], sol[:, bits]
    return alpha, z


@pytest.mark.parametrize("n,k,g,bits", [(7, 200, 64, 3), (5, 96, 32, 2), (3, 40, 40, 1)])
def test_refit_solves_the_dense_least_squares(n, k, g, bits):
    gen = torch.Generator().manual_seed(k)
    w = torch.randn(n, k, generator=gen)
    x = torch.randn(3 * k, k, generator=gen) * torch.rand(k, generator=gen) * 2
    h = x.t() @ x
    codes = torch.randint(0, 2**bits, (n, k), generator=gen)
    ng = math.ceil(k / g)
    zero_grid = torch.zeros(n, ng, bits), torch.zeros(n, ng)  # Q = 0: any fit beats it
    alpha, z = gptq.refit_grid_hessian(w, codes, h, *zero_grid, g)
    ref_alpha, ref_z = _dense_refit(w, codes, h, bits, g)
    q = dequantize_codes(pad_columns(codes, ng * g).view(n, ng, g), alpha, z).view(n, -1)[:, :k]
    ref_q = dequantize_codes(pad_columns(codes, ng * g).view(n, ng, g), ref_alpha, ref_z).view(n, -1)[:, :k]
    # The products run in fp32 (the Hessian's own precision), the solve in fp64.
    assert torch.allclose(q, ref_q, rtol=1e-3, atol=1e-3 * w.abs().max().item())
    assert torch.allclose(gptq.output_error(w, q, h), gptq.output_error(w, ref_q, h), rtol=1e-3)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_uniform_refit_keeps_uniform_grids_and_lowers_the_error(bits):
    gen = torch.Generator().manual_seed(bits)
    n, k, g = 24, 256, 64
    w = torch.randn(n, k, generator=gen)
    x = torch.randn(2 * k, k, generator=gen) * (torch.rand(k, generator=gen) * 4 + 0.1)
    h = x.t() @ x
    codes, alpha0, z0 = fit_mse(w.view(n, k // g, g), bits)
    alpha, z = gptq.refit_grid_hessian(w, codes.view(n, k), h, alpha0, z0, g, uniform=True)
    # alpha_b = alpha_0 * 2^b exactly, in fp32 and after the fp16 cast the kernels read.
    for a in (alpha, alpha.half()):
        assert torch.equal(a[..., 1:], a[..., :-1] * 2)
    q0 = dequantize_codes(codes, alpha0, z0).view(n, k)
    q = dequantize_codes(codes, alpha, z).view(n, k)
    assert (gptq.output_error(w, q, h) <= gptq.output_error(w, q0, h) * (1 + 1e-5)).all()


def test_refit_keeps_the_given_grid_where_it_is_already_optimal():
    gen = torch.Generator().manual_seed(7)
    n, k, g, bits = 6, 128, 64, 3
    w = torch.randn(n, k, generator=gen)
    x = torch.randn(2 * k, k, generator=gen)
    h = x.t() @ x
    codes = torch.randint(0, 2**bits, (n, k), generator=gen)
    best = _dense_refit(w, codes, h, bits, g)
    alpha, z = gptq.refit_grid_hessian(w, codes, h, *best, g)
    q = dequantize_codes(codes.view(n, k // g, g), alpha, z).view(n, k)
    q_best = dequantize_codes(codes.view(n, k // g, g), *best).view(n, k)
    assert torch.allclose(gptq.output_error(w, q, h), gptq.output_error(w, q_best, h), rtol=1e-4)
