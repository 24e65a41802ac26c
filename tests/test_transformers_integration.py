"""transformers: from_pretrained of torch_lowbit checkpoints (save and save_pretrained), quantize
while loading, dequantize, the lazy registration. Tiny random models, offline, CPU."""
import subprocess
import sys

import pytest
import torch

import torch_lowbit
from torch_lowbit.backends import native
from hf_models import output_of, tiny_bert, tiny_gpt2, tiny_llama


MODELS = {"llama": tiny_llama, "gpt2": tiny_gpt2, "bert": tiny_bert}


def _auto_class(model):
    import transformers

    return getattr(transformers, type(model).__name__)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("writer", ["torch_lowbit.save", "save_pretrained"])
def test_from_pretrained_is_bit_identical(tmp_path, name, writer):
    model, batch = MODELS[name]()
    torch_lowbit.patch(model, bits=3, group_size=32)
    expected = output_of(model, batch)
    if writer == "save_pretrained":
        model.save_pretrained(tmp_path / "ckpt")
    else:
        torch_lowbit.save(model, tmp_path / "ckpt")
    loaded = _auto_class(model).from_pretrained(tmp_path / "ckpt")
    low_bit = {n for n, m in loaded.named_modules() if isinstance(m, (torch_lowbit.LowBitLinear, torch_lowbit.LowBitConv2d))}
    assert low_bit == {n for n, m in model.named_modules() if isinstance(m, (torch_lowbit.LowBitLinear, torch_lowbit.LowBitConv2d))}
    assert torch.equal(output_of(loaded, batch), expected)
    # and back out again: save_pretrained of the loaded model, loaded by torch_lowbit.load too
    loaded.save_pretrained(tmp_path / "again")
    assert torch.equal(output_of(_auto_class(model).from_pretrained(tmp_path / "again"), batch), expected)


def test_auto_model_for_causal_lm_and_bf16_keep_fp16_scales(tmp_path):
    from transformers import AutoModelForCausalLM

    model, batch = tiny_llama()
    torch_lowbit.patch(model, bits=4, group_size=32)
    torch_lowbit.save(model, tmp_path / "ckpt")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=torch.bfloat16)
    layer = loaded.model.layers[0].mlp.down_proj
    assert isinstance(layer, torch_lowbit.LowBitLinear) and layer.alpha.dtype == torch.float16 and layer.planes.dtype == torch.uint8
    assert torch.isfinite(loaded(**batch).logits).all()


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_quantize_while_loading_equals_patch(tmp_path, name):
    model, batch = MODELS[name]()
    model.save_pretrained(tmp_path / "float")
    cfg = torch_lowbit.TorchLowbitConfig(bits=3, group_size=32)
    loaded = _auto_class(model).from_pretrained(tmp_path / "float", quantization_config=cfg)
    torch_lowbit.patch(model, bits=3, group_size=32)
    assert torch.equal(output_of(loaded, batch), output_of(model, batch))
    assert loaded.lm_head.bits == 6  # the output head's default (GPT-2's is tied to the embedding)
    assert not loaded.config.tie_word_embeddings
    loaded.save_pretrained(tmp_path / "q")
    assert torch.equal(output_of(_auto_class(model).from_pretrained(tmp_path / "q"), batch), output_of(model, batch))


def test_dequantize_gives_float_layers_with_the_same_outputs(tmp_path):
    model, batch = tiny_llama()
    torch_lowbit.patch(model, bits=4, group_size=32)
    torch_lowbit.save(model, tmp_path / "ckpt")
    loaded = _auto_class(model).from_pretrained(tmp_path / "ckpt")
    tables = native.cpu_lut_tables()
    native.set_cpu_lut_tables("exact")  # the int8 tables differ from a float GEMM by ~1e-3 relative
    try:
        expected = output_of(loaded, batch)
    finally:
        native.set_cpu_lut_tables(tables)
    loaded.dequantize()
    assert not any(isinstance(m, torch_lowbit.LowBitLinear) for m in loaded.modules())
    assert torch.allclose(output_of(loaded, batch), expected, rtol=1e-4, atol=1e-4)


def test_config_round_trips_and_rejects_bad_settings():
    from torch_lowbit.integrations.hf_quantizer import TorchLowbitConfig

    cfg = TorchLowbitConfig(bits=4, group_size=64, method="rtn", skip=["head"])
    again = TorchLowbitConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict() == {"quant_method": "torch_lowbit", "bits": 4, "group_size": 64, "method": "rtn", "scale_dtype": "float16", "skip": ["head"], "head_bits": 6}
    for kwargs, match in [({"bits": 9}, "bits"), ({"group_size": 48}, "group_size"), ({"method": "gptq"}, "calibration"),
                          ({"scale_dtype": "bfloat16"}, "scale_dtype"), ({"surprise": 1}, "unknown keys"), ({"head_bits": 0}, "head_bits")]:
        with pytest.raises(ValueError, match=match):
            TorchLowbitConfig(**kwargs)


def test_edited_checkpoint_config_fails_from_pretrained(tmp_path):
    import json

    model, _ = tiny_llama()
    torch_lowbit.patch(model, bits=3, group_size=32)
    d = torch_lowbit.save(model, tmp_path / "ckpt")
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"]["modules"]["model.layers.0.mlp.up_proj"]["bits"] = 4
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(torch_lowbit.CheckpointError, match="config_sha256"):
        _auto_class(model).from_pretrained(d)


def test_registration_is_lazy_and_happens_when_transformers_loads():
    code = (
        "import sys, torch_lowbit\n"
        "assert 'transformers' not in sys.modules, 'import torch_lowbit imported transformers'\n"
        "from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING, AUTO_QUANTIZATION_CONFIG_MAPPING\n"
        "assert 'torch_lowbit' in AUTO_QUANTIZER_MAPPING and 'torch_lowbit' in AUTO_QUANTIZATION_CONFIG_MAPPING\n"
        "from torch_lowbit.integrations import hf_quantizer\n"
        "hf_quantizer.register()\n"  # a second registration is a no-op, not an error
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    # the other order: TorchLowbitConfig asked for first imports transformers itself
    code = (
        "import torch_lowbit\n"
        "cfg = torch_lowbit.TorchLowbitConfig(bits=4)\n"
        "from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING\n"
        "assert 'torch_lowbit' in AUTO_QUANTIZER_MAPPING\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_torch_lowbit_load_reads_save_pretrained_directories(tmp_path, name):
    model, batch = MODELS[name]()
    torch_lowbit.patch(model, bits=3, group_size=32)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = torch_lowbit.load(tmp_path / "ckpt")
    assert type(loaded) is type(model) and not any(t.is_meta for t in loaded.state_dict().values())
    assert torch.equal(output_of(loaded, batch), output_of(model, batch))


def test_device_map_auto_sizes_the_packed_model(tmp_path):
    from transformers.integrations.accelerate import compute_module_sizes

    model, batch = tiny_llama()
    model.save_pretrained(tmp_path / "float")
    cfg = torch_lowbit.TorchLowbitConfig(bits=3, group_size=32)
    loaded = _auto_class(model).from_pretrained(tmp_path / "float", quantization_config=cfg, device_map="auto")
    torch_lowbit.patch(model, bits=3, group_size=32)
    assert torch.equal(output_of(loaded, batch), output_of(model, batch))
    # what the skeleton is sized at, before loading: the packed bytes, not the float weights
    from torch_lowbit.integrations.hf_quantizer import TorchLowbitHfQuantizer, _install_quantize_on_load_skeletons

    with torch.device("meta"):
        skeleton = type(model)(model.config)
    quantizer = TorchLowbitHfQuantizer(cfg, pre_quantized=False)
    _install_quantize_on_load_skeletons(skeleton, cfg)
    sizes, _ = compute_module_sizes(skeleton, hf_quantizer=quantizer)
    packed = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    assert sizes[""] == packed


@pytest.mark.parametrize("head_bits,expected", [([], 6), (["--head-bits", "none"], None)])
def test_cli_quantize_keeps_a_causal_lms_head(tmp_path, head_bits, expected):
    from torch_lowbit.__main__ import main

    model, batch = tiny_gpt2()  # its lm_head is tied to the token embedding
    model.save_pretrained(tmp_path / "float")
    assert main(["quantize", str(tmp_path / "float"), str(tmp_path / "q"), "--bits", "3", "--group-size", "32", *head_bits]) == 0
    loaded = torch_lowbit.load(tmp_path / "q")
    assert type(loaded).__name__ == "GPT2LMHeadModel"  # the checkpoint's class, head included
    assert getattr(loaded.lm_head, "bits", None) == expected
    reference = torch_lowbit.patch(model, bits=3, group_size=32, head_bits=None if expected is None else 6)
    assert torch.equal(output_of(loaded, batch), output_of(reference, batch))
