"""The data-free grid fitters (quantize/grids.py) and the zero_point_fit op: the compiled CPU search
against its plain-PyTorch reference, zero on every fitter's grid, mse never worse than rtn."""
import pytest
import torch

import torch_lowbit
from torch_lowbit import reference
from conftest import CPU_ISAS
from torch_lowbit.backends import native
from torch_lowbit.quantize.grids import FITTERS, grid_levels


def _group_error(w, scale, zp, bits):
    q = reference.zero_point_codes(w, scale, zp, bits) - zp.unsqueeze(-1)
    return ((q * scale.unsqueeze(-1) - w) ** 2).sum(-1)


@pytest.fixture
def forced_isa(request):
    native.set_cpu_isa(request.param)
    yield request.param
    native.set_cpu_isa(torch_lowbit.build_info()["cpu_isa_best"])


@pytest.mark.parametrize("forced_isa", CPU_ISAS, indirect=True)
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("g", [1, 7, 33, 128, 1000])
def test_compiled_search_matches_reference(forced_isa, bits, g):
    w = torch.randn(301, g) * torch.rand(301, 1) * 3 + torch.randn(301, 1) * 0.3  # scales and offsets vary per group
    w[::17] = w[::17].abs()  # some groups all positive: 0 lies outside [min, max]
    w[5] = 0.0  # a constant group
    scale, zp = torch.ops.torch_lowbit.zero_point_fit(w, bits, 12, 1)
    ref_scale, ref_zp = reference.zero_point_fit(w, bits, 12, 1)
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert torch.equal(zp, zp.round()) and (zp >= 0).all() and (zp <= 2**bits - 1).all()
    # Same search, float sums in another order: where a near-tie picks another candidate, its
    # error must be the reference's.
    err, ref_err = _group_error(w, scale, zp, bits), _group_error(w, ref_scale, ref_zp, bits)
    assert torch.allclose(err, ref_err, rtol=1e-4, atol=1e-6)
    assert (torch.isclose(scale, ref_scale, rtol=1e-5) & (zp == ref_zp)).float().mean() > 0.95


def test_compiled_search_rejects_bad_arguments():
    with pytest.raises(RuntimeError, match="w: expected"):
        torch.ops.torch_lowbit.zero_point_fit(torch.randn(8), 3, 12, 1)
    with pytest.raises(RuntimeError, match="bits"):
        torch.ops.torch_lowbit.zero_point_fit(torch.randn(8, 4), 9, 12, 1)
    with pytest.raises(RuntimeError, match="points"):
        torch.ops.torch_lowbit.zero_point_fit(torch.randn(8, 4), 3, 0, 1)


@pytest.mark.parametrize("method", ["rtn", "mse", "bcq"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_every_fitter_keeps_zero_on_the_grid(method, bits):
    w = torch.randn(40, 3, 64) + 0.5 * torch.randn(40, 3, 1)  # groups off-center
    codes, alpha, z = FITTERS[method](w, bits)
    levels = grid_levels(alpha, z)
    step = alpha.abs().amin(-1)
    assert (levels.abs().amin(-1) <= 1e-4 * step + 1e-7).all()


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_mse_never_worse_than_rtn(bits):
    w = torch.randn(64, 4, 128) * torch.rand(64, 4, 1)
    errs = {}
    for method in ("rtn", "mse"):
        codes, alpha, z = FITTERS[method](w, bits)
        errs[method] = ((torch.gather(grid_levels(alpha, z), -1, codes) - w) ** 2).sum(-1)
    assert (errs["mse"] <= errs["rtn"] * (1 + 1e-5) + 1e-9).all()
    # Over 20 seeds the ratio of total errors was 0.52-0.55 / 0.73-0.76 / 0.88-0.91 at 2 / 3 / 4 bits
    # (a single 0.9 bound failed at 4 bits on one seed).
    assert errs["mse"].sum() < {2: 0.6, 3: 0.8, 4: 0.95}[bits] * errs["rtn"].sum()


def test_default_method_is_mse():
    qw = torch_lowbit.quantize_weight(torch.randn(8, 64), bits=3, group_size=32)
    assert qw.method == "mse" == torch_lowbit.QuantConfig().method
