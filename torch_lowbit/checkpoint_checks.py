"""Validation of a checkpoint's quantization_config and tensors, before anything is built from
them: load() on a hand-edited, truncated or bit-flipped checkpoint raises CheckpointError naming
the module and field, never a TypeError from deep inside or a silently different model.

Integrity: save() records `config_sha256` (of the quantization_config itself, canonical JSON
without the two hash fields) and `weights_sha256` (of model.safetensors). A checkpoint without
them (written by other tools) is still loaded, with every field and tensor checked.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from torch_lowbit.config import METHODS, SCALE_DTYPE_BY_NAME
from torch_lowbit.format import ALLOWED_GROUP_SIZES, FORMAT_VERSION

QUANT_METHOD = "torch_lowbit"
MODULE_KINDS = {"linear": 2, "conv2d": 4}  # kind -> rank of the weight shape
MODULE_FIELDS = ("kind", "shape", "bits", "group_size", "method", "scale_dtype")
HASH_FIELDS = ("config_sha256", "weights_sha256")
TOP_LEVEL_FIELDS = ("quant_method", "format_version", "modules", "tied", "non_persistent_buffers", *HASH_FIELDS)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A torch_lowbit checkpoint that cannot be loaded (missing, corrupted, edited or too new)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:120]


def config_sha256(qc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in qc.items() if k not in HASH_FIELDS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_format_version(version: Any) -> int:
    if not _is_int(version):
        raise CheckpointError(f"quantization_config.format_version: expected an integer, got {_describe(version)}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"quantization_config.format_version: checkpoint format version {version} is newer than this "
            f"torch_lowbit understands ({FORMAT_VERSION}); upgrade torch_lowbit"
        )
    if version < 1:
        raise CheckpointError(f"quantization_config.format_version: expected 1 to {FORMAT_VERSION}, got {version}")
    return version


def check_module_entry(name: str, entry: Any) -> None:
    where = f"quantization_config.modules[{name!r}]"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: expected an object, got {_describe(entry)}")
    missing = [f for f in MODULE_FIELDS if f not in entry]
    unknown = sorted(set(entry) - set(MODULE_FIELDS))
    if missing or unknown:
        raise CheckpointError(f"{where}: missing fields {missing}, unknown fields {unknown} (expected {list(MODULE_FIELDS)})")
    kind = entry["kind"]
    if not isinstance(kind, str) or kind not in MODULE_KINDS:
        raise CheckpointError(f"{where}.kind: expected one of {sorted(MODULE_KINDS)}, got {_describe(kind)}")
    shape = entry["shape"]
    rank = MODULE_KINDS[kind]
    if not isinstance(shape, list) or len(shape) != rank or not all(_is_int(s) and s >= 1 for s in shape):
        raise CheckpointError(f"{where}.shape: expected a list of {rank} positive integers for a {kind}, got {_describe(shape)}")
    bits = entry["bits"]
    if not _is_int(bits) or not 1 <= bits <= 8:
        raise CheckpointError(f"{where}.bits: expected an integer from 1 to 8, got {_describe(bits)}")
    group_size = entry["group_size"]
    if not _is_int(group_size) or group_size not in ALLOWED_GROUP_SIZES:
        raise CheckpointError(f"{where}.group_size: expected one of {ALLOWED_GROUP_SIZES}, got {_describe(group_size)}")
    if not isinstance(entry["method"], str) or entry["method"] not in METHODS:
        raise CheckpointError(f"{where}.method: expected one of {METHODS}, got {_describe(entry['method'])}")
    if not isinstance(entry["scale_dtype"], str) or entry["scale_dtype"] not in SCALE_DTYPE_BY_NAME:
        raise CheckpointError(f"{where}.scale_dtype: expected one of {sorted(SCALE_DTYPE_BY_NAME)}, got {_describe(entry['scale_dtype'])}")


def check_quantization_config(qc: Any) -> dict:
    """Every field of a quantization_config, by type, range and consistency; returns it."""
    if not isinstance(qc, dict) or qc.get("quant_method") != QUANT_METHOD:
        raise CheckpointError("quantization_config: not a torch_lowbit quantization_config (quant_method must be 'torch_lowbit')")
    if "format_version" not in qc:
        raise CheckpointError("quantization_config.format_version: missing")
    check_format_version(qc["format_version"])
    unknown = sorted(set(qc) - set(TOP_LEVEL_FIELDS))
    if unknown:
        raise CheckpointError(f"quantization_config: unknown fields {unknown} for format version {qc['format_version']}")
    modules = qc.get("modules")
    if not isinstance(modules, dict):
        raise CheckpointError(f"quantization_config.modules: expected an object of module name -> entry, got {_describe(modules)}")
    for name, entry in modules.items():
        check_module_entry(name, entry)
    tied = qc.get("tied", {})
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in tied.items()):
        raise CheckpointError(f"quantization_config.tied: expected an object of tensor name -> tensor name, got {_describe(tied)}")
    chained = sorted(set(tied) & set(tied.values()))
    if chained:
        raise CheckpointError(f"quantization_config.tied: {chained[0]!r} is both an alias and the source of one")
    buffers = qc.get("non_persistent_buffers", [])
    if not isinstance(buffers, list) or not all(isinstance(b, str) for b in buffers):
        raise CheckpointError(f"quantization_config.non_persistent_buffers: expected a list of names, got {_describe(buffers)}")
    for field in HASH_FIELDS:
        if field in qc and not (isinstance(qc[field], str) and _SHA256.match(qc[field])):
            raise CheckpointError(f"quantization_config.{field}: expected 64 lowercase hex digits, got {_describe(qc[field])}")
    if "config_sha256" in qc and qc["config_sha256"] != config_sha256(qc):
        raise CheckpointError(
            "quantization_config.config_sha256: does not match the quantization_config; the config was edited "
            "or corrupted after save() (re-save the model to change its settings)"
        )
    return qc


def check_weights_file(path: Path, qc: Mapping[str, Any]) -> None:
    expected = qc.get("weights_sha256")
    if expected is not None and file_sha256(path) != expected:
        raise CheckpointError(
            f"weights_sha256: {path} does not match the checksum save() recorded (truncated, corrupted or "
            f"replaced); pass verify=False only if you changed it on purpose"
        )


def check_tensor(name: str, tensor: torch.Tensor, like: torch.Tensor, exact_dtype: bool) -> None:
    """A loaded tensor against the skeleton's (meta) tensor it replaces."""
    if tuple(tensor.shape) != tuple(like.shape):
        raise CheckpointError(f"tensor {name!r}: expected shape {tuple(like.shape)}, got {tuple(tensor.shape)}")
    if exact_dtype and tensor.dtype != like.dtype:
        raise CheckpointError(f"tensor {name!r}: expected dtype {like.dtype}, got {tensor.dtype}")
    if not exact_dtype and tensor.dtype.is_floating_point != like.dtype.is_floating_point:
        raise CheckpointError(f"tensor {name!r}: expected a {'floating point' if like.dtype.is_floating_point else 'non-float'} tensor like {like.dtype}, got {tensor.dtype}")
