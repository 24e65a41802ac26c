"""save() and load(): an HF-style directory holding a patched model.

    directory/
      config.json          the model's config (HF models) + "quantization_config"
      model.safetensors    packed low-bit buffers, float parameters, all buffers
      tokenizer files      if a tokenizer was given

quantization_config = {"quant_method": "torch_lowbit", "format_version": N, "modules":
{qualified name: {"kind", "shape", "bits", "group_size", "method", "scale_dtype"}}, ...}.
Saving is atomic: the new directory is written beside the old one and swapped in only when
complete, so a failed save leaves any old directory intact.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torch_lowbit.format import FORMAT_VERSION
from torch_lowbit.config import QuantConfig
from torch_lowbit.modules import LowBitConv2d, is_low_bit, skeleton

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
QUANT_METHOD = "torch_lowbit"


class CheckpointError(ValueError):
    """A torch_lowbit checkpoint that cannot be loaded (missing, corrupted, or too new)."""


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
    modules = {}
    for name, module in model.named_modules():
        if is_low_bit(module):
            modules[name] = {"kind": "conv2d" if isinstance(module, LowBitConv2d) else "linear", **module.quant_info()}
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
    config["quantization_config"] = quant_config

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "torch_lowbit_format_version": str(FORMAT_VERSION)})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_into_place(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # put the old checkpoint back
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_quantization_config(directory: str | os.PathLike) -> tuple[dict, dict]:
    """(full config, quantization_config) of a torch_lowbit checkpoint, with clear errors."""
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"directory: {directory} has no {CONFIG_NAME}; not a torch_lowbit checkpoint")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"directory: {config_path} is not valid JSON ({err})") from err
    qc = config.get("quantization_config")
    if not isinstance(qc, dict) or qc.get("quant_method") != QUANT_METHOD:
        raise CheckpointError(f"directory: {config_path} has no torch_lowbit quantization_config")
    version = qc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"directory: checkpoint format version {version} is newer than this torch_lowbit understands "
            f"({FORMAT_VERSION}); upgrade torch_lowbit"
        )
    return config, qc


def _skeleton_from_config(config: dict) -> nn.Module:
    try:
        import transformers
    except ImportError as err:
        raise CheckpointError("model: rebuilding a HuggingFace model needs `transformers`; or pass model= a skeleton") from err
    hf_config = {k: v for k, v in config.items() if k != "quantization_config"}
    archs = hf_config.get("architectures") or []
    cfg = transformers.AutoConfig.for_model(**hf_config)
    cls = getattr(transformers, archs[0], None) if archs else None
    with torch.device("meta"):
        if cls is not None:
            return cls(cfg)
        return transformers.AutoModel.from_config(cfg)


def load(directory: str | os.PathLike, model: nn.Module | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint written by save(): returns a model whose outputs are bit-identical.

    The skeleton is built on the meta device (from config.json with transformers, or the `model`
    you pass) and receives the packed tensors directly: float weights of quantized layers are
    never materialised.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config, qc = read_quantization_config(directory)
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        raise CheckpointError(f"directory: {directory} has no {WEIGHTS_NAME}")
    if model is None:
        model = _skeleton_from_config(config)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module skeleton or None, got {type(model).__name__}")
    _install_skeletons(model, qc["modules"])
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"directory: {weights_path} is corrupted or unreadable ({err})") from err
    expected = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    expected -= set(qc.get("tied", {}))
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise CheckpointError(f"directory: {weights_path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in tensors.items():
        _assign(model, name, tensor)
    for alias, source in qc.get("tied", {}).items():
        owner, _, leaf = source.rpartition(".")
        src = getattr(model.get_submodule(owner) if owner else model, leaf)
        a_owner, _, a_leaf = alias.rpartition(".")
        setattr(model.get_submodule(a_owner) if a_owner else model, a_leaf, src)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"directory: no values for {left[:5]}")
    return model.eval()


def _install_skeletons(model: nn.Module, modules: dict) -> None:
    for name, info in modules.items():
        parent_name, _, attr = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
            old = getattr(parent, attr)
        except AttributeError as err:
            raise CheckpointError(f"directory: the checkpoint quantized {name!r}, which the model does not have") from err
        try:
            config = QuantConfig.from_dict(info)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"directory: module {name!r} has an invalid quantization entry ({err})") from err
        setattr(parent, attr, skeleton(info["kind"], old, tuple(info["shape"]), config))


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
