"""QuantConfig: the settings of one quantized weight (bits, group size, method, scale dtype),
used by patch() and its overrides, by save()/load() (each module's entry in the checkpoint's
quantization_config) and by the CLI.

    >>> import torch
    >>> from torch_lowbit.config import QuantConfig
    >>> cfg = QuantConfig(bits=4, group_size=64)
    >>> cfg.to_dict()
    {'bits': 4, 'group_size': 64, 'method': 'mse', 'scale_dtype': 'float16'}
    >>> QuantConfig.from_dict(cfg.to_dict()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from torch_lowbit.format import ALLOWED_SCALE_DTYPES, check_bits, check_group_size

METHODS = ("rtn", "mse", "bcq", "gptq")
DEFAULT_METHOD = "mse"  # the best data-free method within ~1 s per 11008x4096 layer (README: accuracy)
DATA_FREE_METHODS = ("rtn", "mse", "bcq")
_SCALE_DTYPE_NAMES = {torch.float16: "float16", torch.float32: "float32"}
SCALE_DTYPE_BY_NAME = {name: dtype for dtype, name in _SCALE_DTYPE_NAMES.items()}  # what checkpoints record


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    bits: int = 3
    group_size: int = 128  # 32, 64, 128, 256, or -1 for one group per output row
    method: str = DEFAULT_METHOD
    scale_dtype: torch.dtype = torch.float16

    def __post_init__(self) -> None:
        check_bits(self.bits)
        check_group_size(self.group_size)
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.scale_dtype not in ALLOWED_SCALE_DTYPES:
            raise ValueError(f"scale_dtype: expected torch.float16 or torch.float32, got {self.scale_dtype}")

    def replace(self, **changes: Any) -> "QuantConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what save() writes for a module."""
        return {"bits": self.bits, "group_size": self.group_size, "method": self.method, "scale_dtype": _SCALE_DTYPE_NAMES[self.scale_dtype]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QuantConfig":
        scale = data.get("scale_dtype", "float16")
        if scale not in SCALE_DTYPE_BY_NAME:
            raise ValueError(f"scale_dtype: expected 'float16' or 'float32', got {scale!r}")
        return cls(bits=data["bits"], group_size=data["group_size"], method=data.get("method", "rtn"), scale_dtype=SCALE_DTYPE_BY_NAME[scale])

    def with_override(self, value: int | Mapping[str, Any], pattern: str = "") -> "QuantConfig":
        """This config changed by a patch() override: bits alone, or a dict of bits/group_size/method."""
        if isinstance(value, int) and not isinstance(value, bool):
            return self.replace(bits=value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"bits", "group_size", "method"}
            if unknown:
                raise ValueError(f"overrides: {pattern!r} has unknown keys {sorted(unknown)} (allowed: bits, group_size, method)")
            return self.replace(**value)
        raise TypeError(f"overrides: {pattern!r} must map to bits (int) or a dict of bits/group_size/method, got {value!r}")
