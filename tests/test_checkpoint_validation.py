"""load() on edited checkpoints: every recorded field is checked, and the error names the module
and field (torch_lowbit/checkpoint_checks.py)."""
import json

import pytest
import torch
from torch import nn

import torch_lowbit
from torch_lowbit import CheckpointError


def _model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Conv2d(1, 4, 3), nn.Linear(48, 8))
    return torch_lowbit.patch(m, bits=3, group_size=32, skip=["3"])


def _skeleton():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Conv2d(1, 4, 3), nn.Linear(48, 8))


@pytest.fixture()
def ckpt(tmp_path):
    return torch_lowbit.save(_model(), tmp_path / "ckpt")


def _edit(d, change, drop_config_hash=False):
    path = d / "config.json"
    cfg = json.loads(path.read_text())
    qc = cfg["quantization_config"]
    change(qc)
    if drop_config_hash:
        qc.pop("config_sha256", None)
    path.write_text(json.dumps(cfg))


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(qc):
        target = qc
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return change


FIELD_EDITS = [
    (_set("format_version", -1), r"format_version: expected 1 to"),
    (_set("format_version", 0), r"format_version: expected 1 to"),
    (_set("format_version", True), r"format_version: expected an integer, got bool"),
    (_set("format_version", "1"), r"format_version: expected an integer, got str"),
    (_set("format_version", 1.0), r"format_version: expected an integer, got float"),
    (_set("format_version", None), r"format_version: expected an integer, got NoneType"),
    (_set("format_version", 99), r"format_version: checkpoint format version 99 is newer"),
    (_set("modules", "0", "bits", "3"), r"modules\['0'\]\.bits: expected an integer from 1 to 8, got str"),
    (_set("modules", "0", "bits", 3.5), r"modules\['0'\]\.bits: .* got float"),
    (_set("modules", "0", "bits", None), r"modules\['0'\]\.bits: .* got NoneType"),
    (_set("modules", "0", "bits", -1), r"modules\['0'\]\.bits: .* got int -1"),
    (_set("modules", "0", "bits", 9), r"modules\['0'\]\.bits"),
    (_set("modules", "0", "bits", True), r"modules\['0'\]\.bits: .* got bool"),
    (_set("modules", "0", "shape", [-1, 64]), r"modules\['0'\]\.shape: expected a list of 2 positive integers"),
    (_set("modules", "0", "shape", "x"), r"modules\['0'\]\.shape: .* got str"),
    (_set("modules", "0", "shape", [48]), r"modules\['0'\]\.shape"),
    (_set("modules", "0", "shape", [48.0, 64]), r"modules\['0'\]\.shape"),
    (_set("modules", "2", "shape", [4, 1, 3]), r"modules\['2'\]\.shape: expected a list of 4"),
    (_set("modules", "0", "group_size", 48), r"modules\['0'\]\.group_size"),
    (_set("modules", "0", "group_size", "32"), r"modules\['0'\]\.group_size"),
    (_set("modules", "0", "kind", "conv1d"), r"modules\['0'\]\.kind"),
    (_set("modules", "0", "scale_dtype", "bfloat16"), r"modules\['0'\]\.scale_dtype"),
    (_set("modules", "0", "method", "magic"), r"modules\['0'\]\.method"),
    (_set("modules", "0", "extra", 1), r"modules\['0'\]: missing fields \[\], unknown fields \['extra'\]"),
    (lambda qc: qc["modules"]["0"].pop("bits"), r"modules\['0'\]: missing fields \['bits'\]"),
    (_set("modules", "0", 7), r"modules\['0'\]: expected an object"),
    (_set("modules", []), r"quantization_config\.modules: expected an object"),
    (_set("tied", {"a": 3}), r"quantization_config\.tied"),
    (_set("tied", {"a": "b", "b": "c"}), r"quantization_config\.tied: 'b' is both"),
    (_set("non_persistent_buffers", "x"), r"non_persistent_buffers"),
    (_set("weights_sha256", "abc"), r"weights_sha256: expected 64 lowercase hex"),
    (_set("surprise", 1), r"unknown fields \['surprise'\]"),
    (_set("quant_method", "gptq"), r"not a torch_lowbit quantization_config"),
    # Valid values that differ from what was saved: only the checksum can tell.
    (_set("modules", "0", "method", "bcq"), r"config_sha256: does not match"),
    (lambda qc: qc["modules"].pop("2"), r"config_sha256: does not match"),
]


@pytest.mark.parametrize("change, match", FIELD_EDITS)
def test_edited_field_names_module_and_field(ckpt, change, match):
    _edit(ckpt, change)
    with pytest.raises(CheckpointError, match=match):
        torch_lowbit.load(ckpt, model=_skeleton())


CONSISTENCY_EDITS = [  # without the config checksum: the tensors and the model must still fit
    (_set("modules", "0", "shape", [48, 32]), r"modules\['0'\]\.shape: \[48, 32\] does not fit the model's Linear \(weight \[48, 64\]\)"),
    (_set("modules", "0", "scale_dtype", "float32"), r"tensor '0\.alpha': expected dtype torch\.float32, got torch\.float16"),
    (_set("modules", "0", "bits", 4), r"tensor '0\.(planes|alpha)': expected shape \(4,"),
    (_set("modules", "0", "group_size", 64), r"tensor '0\.alpha': expected shape"),
    (_set("modules", "0", "kind", "conv2d"), r"modules\['0'\]\.shape: expected a list of 4"),
    (_set("modules", "9", {"kind": "linear", "shape": [8, 48], "bits": 3, "group_size": 32, "method": "rtn", "scale_dtype": "float16"}), r"modules\['9'\]: the model has no such module"),
    (_set("modules", "1", {"kind": "linear", "shape": [8, 48], "bits": 3, "group_size": 32, "method": "rtn", "scale_dtype": "float16"}), r"modules\['1'\]: the model's module there is a ReLU"),
    (lambda qc: qc["modules"].pop("2"), r"does not match the model: missing \['2\.weight'\], unexpected \['2\.alpha'"),
    (_set("tied", {"nope": "3.weight"}), r"tied: 'nope' is not a parameter or buffer of the model"),
]


@pytest.mark.parametrize("change, match", CONSISTENCY_EDITS)
def test_inconsistent_checkpoint_is_refused(ckpt, change, match):
    _edit(ckpt, change, drop_config_hash=True)
    with pytest.raises(CheckpointError, match=match):
        torch_lowbit.load(ckpt, model=_skeleton())


@pytest.mark.parametrize("source, match", [("0.bias", r"tensor '3\.bias': expected shape \(8,\), got \(48,\)"), ("nothing", "tied to 'nothing', which the weights file does not hold")])
def test_bad_tie_is_refused(ckpt, source, match):
    from safetensors.torch import load_file, save_file

    tensors = load_file(ckpt / "model.safetensors")
    del tensors["3.bias"]
    save_file(tensors, ckpt / "model.safetensors")
    _edit(ckpt, _set("tied", {"3.bias": source}), drop_config_hash=True)
    with pytest.raises(CheckpointError, match=match):
        torch_lowbit.load(ckpt, model=_skeleton(), verify=False)


def test_checkpoint_without_checksums_still_loads(ckpt):
    """Checkpoints written by other tools carry no checksums: every field is still checked."""
    _edit(ckpt, lambda qc: qc.pop("weights_sha256"), drop_config_hash=True)
    m = _model()
    x = torch.randn(2, 64)
    assert torch.equal(torch_lowbit.load(ckpt, model=_skeleton())[0](x), m[0](x))


def test_bit_flip_in_weights_is_caught(ckpt):
    path = ckpt / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) - 7] ^= 0x10  # inside the last tensor's bytes: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights_sha256"):
        torch_lowbit.load(ckpt, model=_skeleton())
    torch_lowbit.load(ckpt, model=_skeleton(), verify=False)  # an explicit opt-out


def test_wrong_tensor_dtype_is_refused(ckpt):
    from safetensors.torch import load_file, save_file

    tensors = load_file(ckpt / "model.safetensors")
    tensors["0.planes"] = tensors["0.planes"].to(torch.int8)
    save_file(tensors, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"tensor '0\.planes': expected dtype torch\.uint8, got torch\.int8"):
        torch_lowbit.load(ckpt, model=_skeleton(), verify=False)


def test_a_single_patched_layer_round_trips(tmp_path):
    lin = torch_lowbit.patch(nn.Linear(64, 24), bits=4, group_size=32)
    d = torch_lowbit.save(lin, tmp_path / "one")
    with torch.device("meta"):
        skeleton = nn.Linear(64, 24)
    loaded = torch_lowbit.load(d, model=skeleton)
    x = torch.randn(3, 64)
    assert isinstance(loaded, torch_lowbit.LowBitLinear) and torch.equal(loaded(x), lin(x))


def test_hf_config_that_transformers_cannot_build(ckpt):
    pytest.importorskip("transformers")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model_type"] = "no-such-model-type"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json: transformers cannot build the model"):
        torch_lowbit.load(ckpt)
