"""PEFT: LoRA on low-bit layers, with merges that work.

PEFT wraps a LowBitLinear in its plain `lora.Linear` (a LowBitLinear is an nn.Linear), so LoRA
trains, saves and reloads adapters as usual; only merging needs a float weight, which a
low-bit layer does not have. Two merges:

- `merge_and_unload_to_float(peft_model)`: every adapted low-bit layer becomes a float
  nn.Linear holding dequantized weight + delta. Exact; the merged layers are float-sized.
- `lora_config(...)` (a LoraConfig with `LowBitLoraLinear` registered for LowBitLinear), then
  PEFT's own `merge_and_unload()`: the merged weight W + delta is rounded to the layer's own
  grids (same scales and settings, `requantize_on_grid`); the layers stay low-bit. Lossy:
  a delta below half a grid step is rounded away. Each merge records its error,
  ||Q(W + delta) - (W + delta)|| / ||delta||, in `merge_errors` and logs it.

    >>> import torch, torch_lowbit
    >>> from peft import get_peft_model
    >>> from torch_lowbit.integrations.peft import lora_config
    >>> model = torch_lowbit.patch(torch.nn.Sequential(torch.nn.Linear(64, 64)), bits=4, group_size=32)
    >>> peft_model = get_peft_model(model, lora_config(r=4, target_modules=["0"]))
    >>> merged = peft_model.merge_and_unload()
    >>> type(merged[0]).__name__
    'LowBitLinear'
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from peft import LoraConfig
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

from torch_lowbit.modules import LowBitLinear, float_module
from torch_lowbit.quantize import requantize_on_grid

log = logging.getLogger(__name__)


class LowBitLoraLinear(LoraLinear):
    """PEFT's lora.Linear for a LowBitLinear base, whose merge and unmerge re-round the weight
    to the base layer's own grids (see the module docstring)."""

    def _check_plain_lora(self, adapter: str) -> None:
        if adapter in self.lora_variant:
            raise ValueError(f"adapter {adapter!r}: merging {type(self.lora_variant[adapter]).__name__} into a low-bit layer is not supported; "
                             "use torch_lowbit.integrations.peft.merge_and_unload_to_float")
        if self.lora_bias[adapter]:
            raise ValueError(f"adapter {adapter!r}: lora_bias=True cannot be merged into a low-bit layer's frozen bias")

    def _apply_delta(self, adapter: str, sign: float, safe_merge: bool) -> None:
        base = self.get_base_layer()
        qw = base.quantized_weight
        delta = self.get_delta_weight(adapter).float().to(qw.planes.device) * sign
        target = qw.dequantize().float() + delta
        if safe_merge and not torch.isfinite(target).all():
            raise ValueError(f"NaNs detected in the merged weights. The adapter {adapter} seems to be broken")
        new_qw = requantize_on_grid(qw, target)
        error = ((new_qw.dequantize().float() - target).norm() / delta.norm().clamp_min(1e-30)).item()
        self.merge_errors[adapter] = error
        log.info("torch_lowbit: merged adapter %r into a %d-bit layer; rounding error %.3g of the delta's norm", adapter, qw.bits, error)
        new = LowBitLinear(new_qw, base.bias)
        new.backend = base.backend
        _set_base_layer(self, new)

    @property
    def merge_errors(self) -> dict[str, float]:
        if "_merge_errors" not in self.__dict__:
            self.__dict__["_merge_errors"] = {}
        return self.__dict__["_merge_errors"]

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        if not isinstance(self.get_base_layer(), LowBitLinear):  # made float by merge_and_unload_to_float
            return super().merge(safe_merge, adapter_names)
        for adapter in check_adapters_to_merge(self, adapter_names):
            if adapter not in self.lora_A:
                continue
            self._check_plain_lora(adapter)
            self._apply_delta(adapter, 1.0, safe_merge)
            self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        if not isinstance(self.get_base_layer(), LowBitLinear):
            return super().unmerge()
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            if adapter in self.lora_A:
                self._apply_delta(adapter, -1.0, False)


def _set_base_layer(layer: BaseTunerLayer, new: nn.Module) -> None:
    """Replace the innermost base layer of a (possibly nested) tuner layer."""
    owner = layer
    while isinstance(owner.base_layer, BaseTunerLayer):
        owner = owner.base_layer
    owner.base_layer = new


def lora_config(**kwargs: Any) -> LoraConfig:
    """LoraConfig(**kwargs) with LowBitLoraLinear registered for LowBitLinear layers."""
    config = LoraConfig(**kwargs)
    register(config)
    return config


def register(config: LoraConfig) -> LoraConfig:
    """Register LowBitLoraLinear for LowBitLinear on an existing LoraConfig (PEFT's
    experimental custom-module API, `_register_custom_module`); returns the config."""
    config._register_custom_module({LowBitLinear: LowBitLoraLinear})
    return config


def merge_and_unload_to_float(peft_model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Merge every adapter exactly: each adapted low-bit layer becomes a float nn.Linear
    (dequantized weight in `dtype`, plus the delta), then PEFT's merge_and_unload; returns the
    unwrapped model. Layers without adapters stay low-bit."""
    for module in list(peft_model.modules()):
        if isinstance(module, LoraLinear) and isinstance(module.get_base_layer(), LowBitLinear):
            # LowBitLoraLinear then merges as PEFT's lora.Linear does
            _set_base_layer(module, float_module(module.get_base_layer(), dtype))
    return peft_model.merge_and_unload()
