"""PEFT LoRA on low-bit layers: training, adapter save/reload, the two merges."""
import pytest
import torch

import torch_lowbit
from torch_lowbit.backends import native
from torch_lowbit.quantize import requantize_on_grid
from hf_models import tiny_llama

peft = pytest.importorskip("peft")
from torch_lowbit.integrations.peft import LowBitLoraLinear, lora_config, merge_and_unload_to_float  # noqa: E402

TARGETS = ["q_proj", "v_proj", "down_proj"]


@pytest.fixture(autouse=True)
def exact_tables():
    # Outputs are compared across float and low-bit layers: the int8 LUT tables' ~1e-3 relative
    # difference would hide nothing but make the bounds loose.
    tables = native.cpu_lut_tables()
    native.set_cpu_lut_tables("exact")
    yield
    native.set_cpu_lut_tables(tables)


def _adapted(seed=0, scale=1.0):
    model, batch = tiny_llama()
    float_state = {k: v.clone() for k, v in model.state_dict().items()}
    torch_lowbit.patch(model, bits=4, group_size=32)
    pm = peft.get_peft_model(model, lora_config(r=4, lora_alpha=8, target_modules=TARGETS))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    pm.float_state = float_state
    return pm, batch


def test_lora_trains_and_adapters_reload(tmp_path):
    pm, batch = _adapted(scale=0.0)
    assert all(isinstance(m, LowBitLoraLinear) for n, m in pm.named_modules() if n.endswith(tuple(TARGETS)))
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = pm(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    pm.save_pretrained(tmp_path / "adapter")
    expected = pm(**batch).logits
    fresh, _ = tiny_llama()
    fresh.load_state_dict(pm.float_state)
    torch_lowbit.patch(fresh, bits=4, group_size=32)  # deterministic: the same low-bit base
    reloaded = peft.PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    assert torch.equal(reloaded(**batch).logits, expected)


def test_merge_to_low_bit_rounds_to_the_layers_own_grid():
    pm, batch = _adapted(scale=0.5)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    qw = layer.get_base_layer().quantized_weight
    expected_qw = requantize_on_grid(qw, qw.dequantize().float() + layer.get_delta_weight("default").float())
    with_adapter = pm(**batch).logits
    merged = pm.merge_and_unload()
    q = merged.model.layers[0].self_attn.q_proj
    assert isinstance(q, torch_lowbit.LowBitLinear)
    assert torch.equal(q.planes, expected_qw.planes) and torch.equal(q.alpha, qw.alpha) and torch.equal(q.offset, qw.offset)
    assert not any("lora" in n for n, _ in merged.named_modules())
    out = merged(**batch).logits
    assert torch.isfinite(out).all()
    # lossy but toward the adapter: the merged model is closer to the adapted one than the base was
    base_out = _adapted(scale=0.0)[0](**batch).logits
    assert (out - with_adapter).norm() < (base_out - with_adapter).norm()


def test_merge_error_is_recorded_and_unmerge_restores_small_deltas():
    pm, batch = _adapted(scale=1e-4)  # deltas far below half a 4-bit step: all rounded away
    layer = pm.base_model.model.model.layers[0].mlp.down_proj
    planes = layer.get_base_layer().planes.clone()
    layer.merge()
    assert layer.merge_errors["default"] == pytest.approx(1.0, rel=1e-3)  # the whole delta lost, and reported
    assert torch.equal(layer.get_base_layer().planes, planes)
    layer.unmerge()
    assert torch.equal(layer.get_base_layer().planes, planes)


def test_merge_to_float_is_exact():
    pm, batch = _adapted(scale=0.5)
    expected = pm(**batch).logits
    merged = merge_and_unload_to_float(pm)
    q = merged.model.layers[0].self_attn.q_proj
    assert type(q) is torch.nn.Linear and isinstance(merged.model.layers[0].mlp.up_proj, torch_lowbit.LowBitLinear)
    assert torch.allclose(merged(**batch).logits, expected, rtol=1e-4, atol=1e-5)


def test_unsupported_variants_fail_clearly():
    model, batch = tiny_llama()
    torch_lowbit.patch(model, bits=4, group_size=32)
    pm = peft.get_peft_model(model, lora_config(r=4, target_modules=["q_proj"], lora_bias=True))
    with pytest.raises(ValueError, match="lora_bias"):
        pm.merge_and_unload()
