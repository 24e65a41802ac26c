"""save()/load(): round trips, atomic replacement, and clear errors for bad checkpoints."""
import json

import pytest
import torch
from torch import nn

import torch_lowbit
from torch_lowbit import CheckpointError


def _model():
    m = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Conv2d(1, 4, 3), nn.Linear(48, 8))
    return torch_lowbit.patch(m, bits=3, group_size=32, skip=["3"])


def _skeleton():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Conv2d(1, 4, 3), nn.Linear(48, 8))


def test_round_trip_is_bit_identical(tmp_path):
    m = _model()
    d = torch_lowbit.save(m, tmp_path / "ckpt")
    qc = json.loads((d / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "torch_lowbit" and qc["format_version"] == torch_lowbit.FORMAT_VERSION
    assert set(qc["modules"]) == {"0", "2"}
    loaded = torch_lowbit.load(d, model=_skeleton())
    x, xc = torch.randn(3, 64), torch.randn(1, 1, 6, 6)
    assert torch.equal(loaded[0](x), m[0](x)) and torch.equal(loaded[2](xc), m[2](xc))
    assert torch.equal(loaded[3].weight, m[3].weight)


def test_failed_save_leaves_old_checkpoint(tmp_path, monkeypatch):
    d = torch_lowbit.save(_model(), tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        torch_lowbit.save(_model(), d, tokenizer=BrokenTokenizer())
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp directories left


def test_newer_format_version_is_refused(tmp_path):
    d = torch_lowbit.save(_model(), tmp_path / "ckpt")
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"]["format_version"] = torch_lowbit.FORMAT_VERSION + 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="newer"):
        torch_lowbit.load(d, model=_skeleton())


def test_missing_tensor_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    d = torch_lowbit.save(_model(), tmp_path / "ckpt")
    tensors = load_file(d / "model.safetensors")
    del tensors["0.alpha"]
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(CheckpointError, match="weights_sha256"):
        torch_lowbit.load(d, model=_skeleton())
    with pytest.raises(CheckpointError, match="0.alpha"):
        torch_lowbit.load(d, model=_skeleton(), verify=False)


def test_corrupted_weights_are_refused(tmp_path):
    d = torch_lowbit.save(_model(), tmp_path / "ckpt")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        torch_lowbit.load(d, model=_skeleton())


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        torch_lowbit.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="quantization_config"):
        torch_lowbit.load(tmp_path)
