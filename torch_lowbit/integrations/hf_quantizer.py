"""transformers integration: `TorchLowbitConfig` and its `HfQuantizer`, registered under
quant_method "torch_lowbit" (torch_lowbit/integrations/transformers_hook.py does that as soon as
transformers loads its quantizer registry), so that

- `AutoModel*.from_pretrained(dir)` loads a directory written by `torch_lowbit.save` or by
  `save_pretrained` of a patched model, bit-identical to the model that was saved;
- `from_pretrained(float_dir, quantization_config=TorchLowbitConfig(bits=3))` quantizes while
  loading, bit-identical to `torch_lowbit.patch` with the same settings: each layer's float
  weight is quantized as the loader reads it (QuantizeOnLoad), one at a time;
- `model.dequantize()` turns every low-bit layer back into a float nn.Linear / nn.Conv2d.

    >>> import tempfile, torch, torch_lowbit
    >>> from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    >>> cfg = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2)
    >>> model = torch_lowbit.patch(LlamaForCausalLM(cfg).eval(), bits=3, group_size=32)
    >>> d = torch_lowbit.save(model, tempfile.mkdtemp() + "/llama3")
    >>> loaded = AutoModelForCausalLM.from_pretrained(d)
    >>> ids = torch.randint(0, 64, (1, 8))
    >>> torch.equal(loaded(ids).logits, model(ids).logits)
    True
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers.core_model_loading import ConversionOps
from transformers.quantizers import auto as _auto
from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

from torch_lowbit.checkpoint_checks import HASH_FIELDS, QUANT_METHOD, check_quantization_config
from torch_lowbit.config import DEFAULT_METHOD, SCALE_DTYPE_BY_NAME, QuantConfig
from torch_lowbit.format import FORMAT_VERSION
from torch_lowbit.modules import float_module, is_hf_conv1d, is_low_bit
from torch_lowbit.patch import DEFAULT_HEAD_BITS, DEFAULT_SKIP, check_head_bits, drop_tied_keys

class TorchLowbitConfig(QuantizationConfigMixin):
    """Settings for quantizing while loading (`bits`, `group_size`, `method`, `scale_dtype`, `skip`,
    `head_bits` as in torch_lowbit.patch), or, read from a checkpoint's config.json, the saved
    quantization_config (`modules` and the rest; docs/FORMAT.md) that says which layers are
    low-bit. Every key torch_lowbit.save writes is accepted.

    Example:
        >>> from torch_lowbit.integrations.hf_quantizer import TorchLowbitConfig
        >>> TorchLowbitConfig(bits=4, group_size=64).to_dict()["bits"]
        4
    """

    def __init__(self, bits: int = 3, group_size: int = 128, method: str | None = None, scale_dtype: str = "float16",
                 skip: list[str] | None = None, head_bits: int | None = DEFAULT_HEAD_BITS, format_version: int | None = None, modules: dict | None = None,
                 tied: dict | None = None, non_persistent_buffers: list | None = None, **kwargs: Any) -> None:
        self.quant_method = QUANT_METHOD
        if scale_dtype not in SCALE_DTYPE_BY_NAME:
            raise ValueError(f"scale_dtype: expected one of {sorted(SCALE_DTYPE_BY_NAME)}, got {scale_dtype!r}")
        if method == "gptq":
            raise ValueError("method: 'gptq' needs calibration batches; quantize with torch_lowbit.patch(model, calibration=...) and save instead")
        QuantConfig(bits, group_size, method or DEFAULT_METHOD, SCALE_DTYPE_BY_NAME[scale_dtype])  # validates them
        self.bits, self.group_size, self.method, self.scale_dtype = bits, group_size, method or DEFAULT_METHOD, scale_dtype
        self.skip = list(DEFAULT_SKIP if skip is None else skip)
        check_head_bits(head_bits)
        self.head_bits = head_bits
        self.format_version, self.modules = format_version, modules
        self.tied, self.non_persistent_buffers = tied or {}, non_persistent_buffers or []
        if kwargs.pop("quant_method", QUANT_METHOD) != QUANT_METHOD:
            raise ValueError(f"quant_method: expected {QUANT_METHOD!r}")
        unknown = sorted(set(kwargs) - set(HASH_FIELDS))
        if unknown:
            raise ValueError(f"TorchLowbitConfig: unknown keys {unknown}")
        self.hashes = {k: kwargs[k] for k in HASH_FIELDS if k in kwargs}

    @property
    def is_saved_form(self) -> bool:
        return self.modules is not None

    def saved_dict(self, with_hashes: bool = True) -> dict:
        """The quantization_config as torch_lowbit.save writes it (what load() checks)."""
        out = {"quant_method": QUANT_METHOD, "format_version": self.format_version or FORMAT_VERSION, "modules": self.modules,
               "tied": self.tied, "non_persistent_buffers": self.non_persistent_buffers}
        return out | (self.hashes if with_hashes else {})

    def to_dict(self) -> dict[str, Any]:
        # Once the layers are known, the saved form (what from_pretrained and torch_lowbit.load
        # read back); its checksums described the file it came from, not the one being written.
        if self.is_saved_form:
            return copy.deepcopy(self.saved_dict(with_hashes=False))
        return {"quant_method": QUANT_METHOD, "bits": self.bits, "group_size": self.group_size, "method": self.method,
                "scale_dtype": self.scale_dtype, "skip": list(self.skip), "head_bits": self.head_bits}


class TorchLowbitHfQuantizer(HfQuantizer):
    """The HfQuantizer behind quant_method "torch_lowbit" (see the module docstring)."""

    requires_calibration = False

    def _process_model_before_weight_loading(self, model, **kwargs):
        from torch_lowbit.serialization import install_skeletons

        qc = self.quantization_config
        if not self.pre_quantized:
            _install_quantize_on_load_skeletons(model, qc)
            return model
        if not qc.is_saved_form:
            raise ValueError("quantization_config: a torch_lowbit checkpoint's config.json must list its low-bit 'modules'")
        check_quantization_config(qc.saved_dict())  # CheckpointError names the field
        install_skeletons(model, qc.modules)
        drop_tied_keys(model, qc.modules)  # a low-bit head has no float weight to tie to the embedding
        # Every tensor of these layers comes from the checkpoint. Their parents must not be
        # re-initialized either: GPT-2's _init_weights writes into `attn.c_proj.weight`, which a
        # low-bit layer does not have.
        for name in qc.modules:
            model.get_submodule(name)._is_hf_initialized = True
            model.get_submodule(name.rpartition(".")[0])._is_hf_initialized = True
        # torch_lowbit.save also writes non-persistent buffers (so its own load never leaves one
        # on meta); transformers rebuilds those itself.
        ignore = set(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or ())
        model._keys_to_ignore_on_load_unexpected = ignore | {rf"^{name.replace('.', r'[.]')}$" for name in qc.non_persistent_buffers}
        return model

    def param_needs_quantization(self, model, param_name: str, **kwargs) -> bool:
        owner, _, leaf = param_name.rpartition(".")
        return not self.pre_quantized and leaf == "weight" and owner in self._quantize_on_load(model)

    def _quantize_on_load(self, model) -> set[str]:
        return getattr(model, "_torch_lowbit_pending", set())

    def param_element_size(self, model, param_name: str, param: torch.Tensor) -> float:
        # device_map="auto" sizes the skeleton: the packed buffers already have their real
        # dtypes, and the float placeholder of a layer quantized on load takes no memory.
        return 0 if self.param_needs_quantization(model, param_name) else param.element_size()

    def get_quantize_ops(self):
        return QuantizeOnLoad(self)

    def _process_model_after_weight_loading(self, model, **kwargs):
        from torch_lowbit.serialization import record_in_hf_config

        if not self.pre_quantized:
            deferred = getattr(model, "_torch_lowbit_deferred", ())
            if deferred:  # heads tied to the embedding, loaded float: quantized now, as patch() would
                report = model.torch_lowbit_report
                _patch(model, self.quantization_config, filter_fn=lambda module, name: name in deferred)
                late = model.torch_lowbit_report
                report.replaced += late.replaced
                report.notes += late.notes
                report.skipped = [s for s in report.skipped if s[0] not in deferred] + [s for s in late.skipped if s[0] in deferred]
                model.torch_lowbit_report = report
            pending = sorted(self._quantize_on_load(model))
            if pending:
                raise ValueError(f"from_pretrained: the checkpoint has no float weight for {pending[:5]}; nothing to quantize them from")
            model.config.quantization_config = self.quantization_config
            record_in_hf_config(model)
        return model

    def _dequantize(self, model, dtype=None):
        return dequantize_model(model, dtype)

    def is_serializable(self) -> bool:
        return True

    @property
    def is_trainable(self) -> bool:
        return True  # adapters (LoRA) train on top of the frozen low-bit layers

    @property
    def is_compileable(self) -> bool:
        return True


def _patch(model: nn.Module, qc: TorchLowbitConfig, **kwargs: Any) -> nn.Module:
    import torch_lowbit

    return torch_lowbit.patch(model, bits=qc.bits, group_size=qc.group_size, method=qc.method, skip=qc.skip, head_bits=qc.head_bits,
                              scale_dtype=SCALE_DTYPE_BY_NAME[qc.scale_dtype], **kwargs)


def _install_quantize_on_load_skeletons(model: nn.Module, qc: TorchLowbitConfig) -> None:
    """On the meta skeleton: every layer patch() would quantize becomes an empty low-bit layer
    (patch on a meta model) holding a float-shaped meta `weight` placeholder, so that the
    checkpoint's float weight is routed to QuantizeOnLoad, one layer at a time."""
    float_shapes = {name: tuple(m.weight.shape) for name, m in model.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)}
    conv1d = {name for name, m in model.named_modules() if is_hf_conv1d(m)}
    # A head tied to the input embedding has no weight of its own in the checkpoint: it loads
    # float (transformers ties it) and is quantized after loading.
    tied = {key.rpartition(".")[0] for key in (getattr(model, "all_tied_weights_keys", None) or {}) if key.endswith(".weight")}
    _patch(model, qc, filter_fn=lambda module, name: name not in tied)
    model._torch_lowbit_deferred = {name for name, _ in model.torch_lowbit_report.skipped if name in tied}
    pending = set()
    for name, module in model.named_modules():
        if is_low_bit(module):
            module.weight = nn.Parameter(torch.empty(float_shapes[name], device="meta"), requires_grad=False)
            module._weight_is_hf_conv1d = name in conv1d  # its checkpoint weight is [in, out]
            pending.add(name)
            model.get_submodule(name.rpartition(".")[0])._is_hf_initialized = True  # see _process_model_before_weight_loading
    model._torch_lowbit_pending = pending


class QuantizeOnLoad(ConversionOps):
    """transformers' loader hands this op each target layer's float weight as it is read; it
    returns the layer's packed tensors, so only one float weight is in memory at a time."""

    def __init__(self, hf_quantizer: TorchLowbitHfQuantizer) -> None:
        self.hf_quantizer = hf_quantizer

    def convert(self, input_dict: dict, model=None, full_layer_name: str | None = None, missing_keys=None, **kwargs) -> dict:
        from torch_lowbit.quantize import quantize_weight

        key, value = next(iter(input_dict.items()))
        value = value[0] if isinstance(value, list) else value
        name = key.rpartition(".")[0]
        module = model.get_submodule(name)
        weight = value.t() if module._weight_is_hf_conv1d else value
        qw = quantize_weight(weight, bits=module.bits, group_size=module.group_size, method=module.method, scale_dtype=module.scale_dtype)
        module.register_parameter("weight", None)  # the placeholder goes; the layer has no float weight
        model._torch_lowbit_pending.discard(name)
        if missing_keys is not None:
            missing_keys.discard(key)
        return {f"{name}.planes": qw.planes, f"{name}.alpha": qw.alpha, f"{name}.offset": qw.offset}


def dequantize_model(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """Replace every low-bit layer by a float nn.Linear / nn.Conv2d holding its dequantized
    weight (in `dtype`, default float32); returns the model."""
    dtype = dtype or torch.float32
    for name, module in list(model.named_modules()):
        if not is_low_bit(module):
            continue
        new = float_module(module, dtype)
        parent, _, attr = name.rpartition(".")
        if not name:
            return new
        setattr(model.get_submodule(parent) if parent else model, attr, new)
    return model


def register() -> None:
    """Register the config and quantizer with transformers (once; a second call does nothing)."""
    if QUANT_METHOD not in _auto.AUTO_QUANTIZATION_CONFIG_MAPPING:
        _auto.register_quantization_config(QUANT_METHOD)(TorchLowbitConfig)
    if QUANT_METHOD not in _auto.AUTO_QUANTIZER_MAPPING:
        _auto.register_quantizer(QUANT_METHOD)(TorchLowbitHfQuantizer)


register()  # importing this module (torch_lowbit.TorchLowbitConfig does) registers too
