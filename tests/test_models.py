"""Real model architectures from transformers configs: GPT-2 (Conv1D), BERT (Linear) and a
ResNet (Conv2d) patch, run, save and reload bit-identically, compile fullgraph, train LoRA."""
import pytest
import torch

import torch_lowbit

pytest.importorskip("transformers")
from hf_models import MODELS, output_of  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name", list(MODELS))
def test_patch_save_load_compile(name, tmp_path):
    torch.manual_seed(0)
    model, batch = MODELS[name]()
    with torch.no_grad():
        ref = output_of(model, batch)
    torch_lowbit.patch(model, bits=4, group_size=32)
    kinds = {r["kind"] for r in model.torch_lowbit_report.replaced}
    # (GPT-2: its Conv1D layers, and the lm_head tied to the embedding, 6-bit by default)
    assert kinds == {"gpt2": {"conv1d", "linear"}, "bert": {"linear"}, "resnet": {"conv2d"}}[name]
    with torch.no_grad():
        out = output_of(model, batch)
    assert torch.isfinite(out).all()
    assert ((out - ref).norm() / ref.norm()) < 0.3

    directory = torch_lowbit.save(model, tmp_path / "ckpt")
    loaded = torch_lowbit.load(directory)
    with torch.no_grad():
        assert torch.equal(output_of(loaded, batch), out)
    assert not any(t.is_meta for t in loaded.state_dict().values())

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert torch.allclose(output_of(compiled, batch), out, atol=1e-5)


@pytest.mark.parametrize("name,targets", [("gpt2", ["c_attn", "c_fc"]), ("bert", ["query", "value", "dense"])])
def test_lora_trains_on_patched_model(name, targets):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model, batch = MODELS[name]()
    torch_lowbit.patch(model, bits=3, group_size=32)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    target = torch.randn(output_of(model, batch)[..., :4].shape)
    opt = torch.optim.AdamW(trainable, lr=5e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.mse_loss(output_of(model, batch)[..., :4], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
