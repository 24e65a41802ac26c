"""save() and load(): an HF-style directory holding a patched model.

    directory/
      config.json          the model's config (HF models) + "quantization_config"
      model.safetensors    packed low-bit buffers, float parameters, all buffers
      tokenizer files      if a tokenizer was given

quantization_config = {"quant_method": "torch_lowbit", "format_version": N, "modules":
{qualified name: {"kind", "shape", "bits", "group_size", "method", "scale_dtype"}}, "tied",
"non_persistent_buffers", "config_sha256", "weights_sha256"} (docs/FORMAT.md). load() checks every
field and tensor before building anything (checkpoint_checks.py). Saving is atomic
(atomic_dir.py): the new directory is written and fsync'ed beside the old one and swapped in
only when complete, so a failed or killed save leaves any old directory byte-identical.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torch_lowbit import checkpoint_checks as checks
from torch_lowbit.atomic_dir import recover, replace_dir
from torch_lowbit.checkpoint_checks import QUANT_METHOD, CheckpointError
from torch_lowbit.config import QuantConfig
from torch_lowbit.format import FORMAT_VERSION
from torch_lowbit.modules import LowBitConv2d, is_hf_conv1d, is_low_bit, skeleton

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
__all__ = ["CheckpointError", "load", "read_quantization_config", "save"]


def _tensors_and_aliases(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Every parameter and buffer (non-persistent ones too, so load() never leaves a meta tensor),
    each storage once: tied tensors become aliases of the first name."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    non_persistent: list[str] = []
    seen: dict[tuple, str] = {}
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    for name, tensor in named:
        if tensor is None:
            continue
        if tensor.is_meta:
            raise ValueError(f"model: {name} is on the meta device; there is nothing to save")
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if leaf in getattr(module, "_non_persistent_buffers_set", ()):
            non_persistent.append(name)
    return tensors, aliases, non_persistent


def module_entries(model: nn.Module) -> dict[str, dict]:
    """quantization_config["modules"] of a model: {qualified name: entry} per low-bit layer."""
    return {name: {"kind": "conv2d" if isinstance(m, LowBitConv2d) else "linear", **m.quant_info()}
            for name, m in model.named_modules() if is_low_bit(m)}


def record_in_hf_config(model: nn.Module) -> None:
    """Write the model's low-bit layers into its transformers config (config.quantization_config),
    so that save_pretrained writes a checkpoint from_pretrained and load() read back. Models
    without a transformers config, or quantized by another method, are left alone."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict") or not hasattr(config, "model_type"):
        return
    modules = module_entries(model)
    current = getattr(config, "quantization_config", None)
    if current is None or isinstance(current, dict) and current.get("quant_method") == QUANT_METHOD:
        config.quantization_config = {"quant_method": QUANT_METHOD, "format_version": FORMAT_VERSION, "modules": modules, "tied": {}, "non_persistent_buffers": []}
    elif getattr(current, "quant_method", None) == QUANT_METHOD:
        current.format_version, current.modules = FORMAT_VERSION, modules


def save(model: nn.Module, directory: str | os.PathLike, tokenizer: Any = None) -> Path:
    """Write a patched model to `directory` (atomically). Returns the directory.

    Example:
        >>> import tempfile, torch, torch_lowbit
        >>> m = torch_lowbit.patch(torch.nn.Sequential(torch.nn.Linear(64, 8)), bits=4, group_size=32)
        >>> d = torch_lowbit.save(m, tempfile.mkdtemp() + "/ckpt")
        >>> sorted(p.name for p in d.iterdir())
        ['config.json', 'model.safetensors']
    """
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    directory = Path(directory)
    modules = module_entries(model)
    tensors, aliases, non_persistent = _tensors_and_aliases(model)
    quant_config = {
        "quant_method": QUANT_METHOD,
        "format_version": FORMAT_VERSION,
        "modules": modules,
        "tied": aliases,
        "non_persistent_buffers": non_persistent,
    }
    config = {}
    if hasattr(model, "config") and hasattr(model.config, "to_dict"):
        config = model.config.to_dict()
        config["architectures"] = [type(model).__name__]  # as save_pretrained does: load() rebuilds this class
        if config.get("dtype") is None:
            # from_pretrained(dtype="auto") otherwise takes the first float tensor of the file,
            # which may be a layer's fp16 scales.
            floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
            config["dtype"] = str(floats[0]).removeprefix("torch.") if floats else None
    config["quantization_config"] = quant_config

    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory: {directory} exists and is not a directory")

    def write(tmp: Path) -> None:
        weights = tmp / WEIGHTS_NAME
        # One metadata key: safetensors writes its metadata map in hash order, which differs
        # between processes; with one key the same model always gives the same bytes.
        save_file(tensors, str(weights), metadata={"format": "pt"})
        quant_config["weights_sha256"] = checks.file_sha256(weights)
        quant_config["config_sha256"] = checks.config_sha256(quant_config)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))

    return replace_dir(directory, write)


def read_quantization_config(directory: str | os.PathLike) -> tuple[dict, dict]:
    """(full config, quantization_config) of a torch_lowbit checkpoint, every field checked
    (torch_lowbit/checkpoint_checks.py); CheckpointError names the field."""
    directory = Path(directory)
    recover(directory)  # a save killed between its two renames (non-Linux fallback)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"directory: {directory} has no {CONFIG_NAME}; not a torch_lowbit checkpoint")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"directory: {config_path} is not valid JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(config.get("quantization_config"), dict):
        raise CheckpointError(f"directory: {config_path} has no torch_lowbit quantization_config")
    return config, checks.check_quantization_config(config["quantization_config"])


def _skeleton_from_config(config: dict) -> nn.Module:
    try:
        import transformers
    except ImportError as err:
        raise CheckpointError("model: rebuilding a HuggingFace model needs `transformers`; or pass model= a skeleton") from err
    hf_config = {k: v for k, v in config.items() if k != "quantization_config"}
    archs = hf_config.get("architectures") or []
    try:
        cfg = transformers.AutoConfig.for_model(**hf_config)
        cls = getattr(transformers, archs[0], None) if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
        with torch.device("meta"):
            return cls(cfg) if cls is not None else transformers.AutoModel.from_config(cfg)
    except Exception as err:  # transformers raises many kinds for a bad config
        raise CheckpointError(f"config.json: transformers cannot build the model from it ({type(err).__name__}: {err}); pass model= a skeleton") from err


def load(
    directory: str | os.PathLike,
    model: nn.Module | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
) -> nn.Module:
    """Load a checkpoint written by save() (or by save_pretrained of a patched transformers model,
    which goes through transformers' from_pretrained): returns a model whose outputs are
    bit-identical.

    The skeleton is built on the meta device (from config.json with transformers, or the `model`
    you pass) and receives the packed tensors directly: float weights of quantized layers are
    never materialised. Every config field and every tensor's shape and dtype is checked, and
    with `verify` (default) model.safetensors against the checksum save() recorded (one read
    of the file, ~1 s per GB); anything wrong raises CheckpointError naming the module, field or
    tensor. Only safetensors is read: nothing is unpickled.

    Example:
        >>> import tempfile, torch, torch_lowbit
        >>> m = torch_lowbit.patch(torch.nn.Sequential(torch.nn.Linear(64, 8)), bits=4, group_size=32)
        >>> d = torch_lowbit.save(m, tempfile.mkdtemp() + "/ckpt")
        >>> with torch.device("meta"):
        ...     skeleton = torch.nn.Sequential(torch.nn.Linear(64, 8))
        >>> x = torch.randn(2, 64)
        >>> torch.equal(torch_lowbit.load(d, model=skeleton)(x), m(x))
        True
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config, qc = read_quantization_config(directory)
    if model is None and "weights_sha256" not in qc and config.get("architectures"):
        # Written by transformers' save_pretrained (no checksum, maybe sharded, without the
        # non-persistent buffers transformers rebuilds): load it the way it was written.
        return _load_with_transformers(directory, config, device)
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        raise CheckpointError(f"directory: {directory} has no {WEIGHTS_NAME}")
    if verify:
        checks.check_weights_file(weights_path, qc)
    if model is None:
        model = _skeleton_from_config(config)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module skeleton or None, got {type(model).__name__}")
    model = install_skeletons(model, qc["modules"])
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"directory: {weights_path} is corrupted or unreadable ({err})") from err
    tied = qc.get("tied", {})
    like = dict(model.named_parameters(remove_duplicate=False)) | dict(model.named_buffers(remove_duplicate=False))
    expected = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    expected -= set(tied)
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise CheckpointError(f"directory: {weights_path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    packed = {f"{m}.{leaf}" if m else leaf for m in qc["modules"] for leaf in ("planes", "alpha", "offset")}
    for name, tensor in tensors.items():
        checks.check_tensor(name, tensor, like[name], exact_dtype=name in packed)
    for alias, source in tied.items():
        if alias not in like:
            raise CheckpointError(f"quantization_config.tied: {alias!r} is not a parameter or buffer of the model")
        if source not in tensors:
            raise CheckpointError(f"quantization_config.tied: {alias!r} is tied to {source!r}, which the weights file does not hold")
        checks.check_tensor(alias, tensors[source], like[alias], exact_dtype=False)
    for name, tensor in tensors.items():
        _assign(model, name, tensor)
    for alias, source in tied.items():
        owner, _, leaf = source.rpartition(".")
        src = getattr(model.get_submodule(owner) if owner else model, leaf)
        a_owner, _, a_leaf = alias.rpartition(".")
        setattr(model.get_submodule(a_owner) if a_owner else model, a_leaf, src)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"directory: no values for {left[:5]}")
    record_in_hf_config(model)
    return model.eval()


def _load_with_transformers(directory: Path, config: dict, device: str | torch.device) -> nn.Module:
    try:
        import transformers
    except ImportError as err:
        raise CheckpointError("directory: written by save_pretrained; loading it needs `transformers`") from err
    cls = getattr(transformers, config["architectures"][0], None) if isinstance(config["architectures"][0], str) else None
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise CheckpointError(f"config.json: architectures {config['architectures']!r} is not a transformers model class")
    return cls.from_pretrained(str(directory), device_map=str(device)).eval()


def install_skeletons(model: nn.Module, modules: dict) -> nn.Module:
    """Swap in an empty low-bit module for each quantized entry; returns the model (the new
    module itself when the checkpoint is one patched layer, entry name "")."""
    for name, info in modules.items():
        parent_name, _, attr = name.rpartition(".")
        try:
            old = model.get_submodule(name)
        except AttributeError as err:
            raise CheckpointError(f"quantization_config.modules[{name!r}]: the model has no such module") from err
        if not isinstance(old, (nn.Linear, nn.Conv2d)) and not is_hf_conv1d(old):
            raise CheckpointError(f"quantization_config.modules[{name!r}]: the model's module there is a {type(old).__name__}, not a Linear, Conv1D or Conv2d")
        if (info["kind"] == "conv2d") != isinstance(old, nn.Conv2d):
            raise CheckpointError(f"quantization_config.modules[{name!r}].kind: {info['kind']!r} does not fit the model's {type(old).__name__}")
        if info["shape"] != _weight_shape(old):
            raise CheckpointError(f"quantization_config.modules[{name!r}].shape: {info['shape']} does not fit the model's {type(old).__name__} (weight {_weight_shape(old)})")
        config = QuantConfig.from_dict(info)  # fields already checked by check_quantization_config
        new = skeleton(info["kind"], old, tuple(info["shape"]), config)
        if not name:
            return new
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return model


def _weight_shape(module: nn.Module) -> list[int]:
    """[N, K] / [O, C/g, R, S] of a float or low-bit module (HF Conv1D stores weight [K, N])."""
    if is_low_bit(module):
        return list(module.weight_shape)
    shape = list(module.weight.shape)
    return shape[::-1] if is_hf_conv1d(module) else shape


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if leaf in module._parameters:
        old = module._parameters[leaf]
        module._parameters[leaf] = nn.Parameter(tensor, requires_grad=old.requires_grad if old is not None else False)
    elif leaf in module._buffers:
        module._buffers[leaf] = tensor
    else:
        raise CheckpointError(f"directory: tensor {name!r} has no place in the model")
