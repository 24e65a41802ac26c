"""patch(): which modules it replaces, options, reports, devices, and a second call."""
import pytest
import torch
from torch import nn

import torch_lowbit
from torch_lowbit import LowBitConv2d, LowBitLinear


def _mlp():
    return nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 10))


def test_replaces_linears_in_place_and_keeps_linear_type():
    m = _mlp()
    x = torch.randn(5, 64)
    ref = m(x)
    out_model = torch_lowbit.patch(m, bits=4, group_size=32)
    assert out_model is m
    assert all(isinstance(m[i], LowBitLinear) and isinstance(m[i], nn.Linear) for i in (0, 2, 4))
    assert m[0].weight is None and m[0].bias is not None
    assert ((m(x) - ref).norm() / ref.norm()) < 0.15
    assert "bits=4" in repr(m[0]) and "group_size=32" in repr(m[0]) and "method='mse'" in repr(m[0])


def test_skip_overrides_filter_and_report():
    m = _mlp()
    torch_lowbit.patch(m, bits=3, group_size=32, skip=["4"], overrides={"2": {"bits": 5, "group_size": 64}}, filter_fn=lambda mod, name: mod.in_features >= 64)
    assert isinstance(m[0], LowBitLinear) and m[0].bits == 3
    assert m[2].bits == 5 and m[2].group_size == 64
    assert type(m[4]) is nn.Linear
    report = m.torch_lowbit_report
    assert [r["name"] for r in report.replaced] == ["0", "2"]
    assert ("4", "matched skip") in report.skipped
    assert report.bytes_before == (64 * 96 + 96 * 64) * 4 and 0 < report.bytes_after < report.bytes_before / 4
    assert "replaced 2 modules" in str(report)


class _LM(nn.Module):
    def __init__(self, tied: bool = False):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.body = nn.Linear(32, 32)
        self.lm_head = nn.Linear(32, 50, bias=False)
        if tied:
            self.lm_head.weight = self.embed.weight

    def forward(self, ids):
        return self.lm_head(self.body(self.embed(ids)))


def test_output_head_is_6_bit_by_default():
    m = torch_lowbit.patch(_LM(), group_size=32)
    assert m.body.bits == 3 and isinstance(m.lm_head, LowBitLinear) and m.lm_head.bits == 6
    assert type(torch_lowbit.patch(_LM(), group_size=32, head_bits=None).lm_head) is nn.Linear
    assert torch_lowbit.patch(_LM(), bits=8, group_size=32).lm_head.bits == 8  # never below bits
    assert torch_lowbit.patch(_LM(), group_size=32, head_bits=4).lm_head.bits == 4
    assert torch_lowbit.patch(_LM(), group_size=32, overrides={"lm_head": 2}).lm_head.bits == 2  # overrides win
    assert type(torch_lowbit.patch(_LM(), group_size=32, skip=["lm_head"]).lm_head) is nn.Linear
    for bad in (0, 9, 2.5, True, "6"):
        with pytest.raises(ValueError, match="head_bits"):
            torch_lowbit.patch(_LM(), head_bits=bad)


def test_tied_head_becomes_its_own_copy_and_the_embedding_stays():
    m = _LM(tied=True)
    embedding = m.embed.weight.detach().clone()
    ids = torch.randint(0, 50, (2, 5))
    torch_lowbit.patch(m, group_size=32)
    assert isinstance(m.lm_head, LowBitLinear) and torch.equal(m.embed.weight, embedding)
    assert any(name == "lm_head" and "was tied to embed.weight" in what for name, what in m.torch_lowbit_report.notes)
    # The head multiplies by a 6-bit copy of the embedding (int8 activation tables: ~1e-3 off).
    copy = m.lm_head.quantized_weight.dequantize()
    assert (copy - embedding).norm() / embedding.norm() < 0.02
    expected = m.body(m.embed(ids)) @ copy.t()
    assert ((m(ids) - expected).norm() / expected.norm()).item() < 1e-2


def test_patching_twice_changes_nothing_more():
    m = torch_lowbit.patch(_mlp(), bits=3, group_size=32)
    planes = m[0].planes.clone()
    torch_lowbit.patch(m, bits=8, group_size=32)
    assert m[0].bits == 3 and torch.equal(m[0].planes, planes)
    assert ("0", "already low-bit") in m.torch_lowbit_report.skipped


def test_conv2d_is_replaced_and_runs_im2win():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, groups=2), nn.Conv2d(8, 4, 1, padding_mode="reflect"))
    x = torch.randn(2, 3, 12, 12)
    ref = m(x)
    torch_lowbit.patch(m, bits=4, group_size=32)
    assert isinstance(m[0], LowBitConv2d) and isinstance(m[0], nn.Conv2d) and isinstance(m[2], LowBitConv2d)
    assert type(m[3]) is nn.Conv2d  # reflect padding: documented skip
    assert any("padding_mode" in why for _, why in m.torch_lowbit_report.skipped)
    assert ((m(x) - ref).norm() / ref.norm()) < 0.2


def test_meta_model_gets_skeletons():
    with torch.device("meta"):
        m = _mlp()
    torch_lowbit.patch(m, bits=3, group_size=32)
    assert isinstance(m[0], LowBitLinear) and m[0].planes.is_meta and m[0].planes.shape == (3, 6, 64 // 8, 16)


def test_half_and_bfloat16_keep_packed_weight():
    m = torch_lowbit.patch(_mlp(), bits=3, group_size=32, scale_dtype=torch.float32)
    m.bfloat16()
    assert m[0].planes.dtype == torch.uint8 and m[0].alpha.dtype == torch.float32
    assert m[0].bias.dtype == torch.bfloat16
    out = m(torch.randn(2, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(bits=0), ValueError, "bits"),
        (dict(group_size=48), ValueError, "group_size"),
        (dict(method="awq"), ValueError, "method"),
        (dict(method="gptq"), ValueError, "calibration"),
        (dict(method="mse", calibration=[torch.randn(1, 64)]), ValueError, "calibration"),
        (dict(overrides={"0": "four"}), TypeError, "overrides"),
        (dict(overrides={"0": {"bitz": 4}}), ValueError, "overrides"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        torch_lowbit.patch(_mlp(), **kwargs)
    with pytest.raises(TypeError, match="model"):
        torch_lowbit.patch("not a model")


def test_gptq_beats_rtn_on_layer_output():
    torch.manual_seed(0)
    lin = nn.Linear(128, 64)
    # Correlated inputs with uneven energy: what GPTQ exploits.
    basis = torch.randn(128, 128) * torch.linspace(3, 0.1, 128)
    batches = [torch.randn(32, 128) @ basis for _ in range(8)]
    test = torch.randn(64, 128) @ basis
    ref = lin(test)
    errs = {}
    for method in ("rtn", "gptq"):
        m = nn.Sequential(nn.Linear(128, 64))
        m[0].load_state_dict(lin.state_dict())
        torch_lowbit.patch(m, bits=3, group_size=32, method=method, calibration=batches if method == "gptq" else None)
        errs[method] = ((m(test) - ref).norm() / ref.norm()).item()
    assert errs["gptq"] < 0.7 * errs["rtn"], errs


def test_accelerate_hooks_are_kept():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module

    m = _mlp()
    add_hook_to_module(m[0], AlignDevicesHook(execution_device="cpu", io_same_device=True))
    torch_lowbit.patch(m, bits=3, group_size=32)
    assert isinstance(m[0], LowBitLinear) and isinstance(m[0]._hf_hook, AlignDevicesHook)
    assert m(torch.randn(2, 64)).shape == (2, 10)
