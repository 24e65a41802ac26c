"""Low-bit modules that replace nn.Linear (and, in patch.py, HF Conv1D and nn.Conv2d).

The packed weight lives in buffers (planes, alpha, offset), so .to(device), state_dict and
save/load move it like any other tensor; the float weight is gone.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_lowbit import ops
from torch_lowbit.format import QuantizedWeight


class _PackedWeight:
    """Mixin: holds a QuantizedWeight's tensors as buffers and rebuilds it on demand."""

    planes: torch.Tensor
    alpha: torch.Tensor
    offset: torch.Tensor

    def _init_packed(self, qw: QuantizedWeight) -> None:
        self.register_buffer("planes", qw.planes)
        self.register_buffer("alpha", qw.alpha)
        self.register_buffer("offset", qw.offset)
        self.weight_shape = tuple(qw.shape)
        self.bits, self.group_size, self.method = qw.bits, qw.group_size, qw.method
        self.backend = "auto"

    @property
    def qweight(self) -> QuantizedWeight:
        return QuantizedWeight(self.planes, self.alpha, self.offset, self.weight_shape, self.group_size, self.method)

    def _apply(self, fn, recurse=True):
        # .half()/.bfloat16() must not touch the packed scales' dtype (fp16/fp32 by design) or
        # the uint8 planes; device moves apply to all. Float params (bias) follow as usual.
        scales_dtype = self.alpha.dtype
        out = super()._apply(fn, recurse)
        if self.alpha.dtype != scales_dtype:
            self.alpha = self.alpha.to(scales_dtype)
            self.offset = self.offset.to(scales_dtype)
        return out

    def packed_extra_repr(self) -> str:
        return f"bits={self.bits}, group_size={self.group_size}, method={self.method!r}"


class LowBitLinear(_PackedWeight, nn.Linear):
    """A frozen low-bit nn.Linear: y = x @ W^T + b with W in BCQ form.

    It stays an nn.Linear (isinstance checks in PEFT and other tools see one), but has no float
    `weight` parameter. The bias stays float.

    Example:
        >>> import torch, torch_lowbit
        >>> lin = torch.nn.Linear(96, 40)
        >>> q = torch_lowbit.modules.LowBitLinear.from_linear(lin, bits=4, group_size=32)
        >>> q(torch.randn(3, 96)).shape
        torch.Size([3, 40])
    """

    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = qw.in_features, qw.out_features
        self._init_packed(qw)
        self.register_parameter("weight", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=bias.requires_grad)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 3, group_size: int = 128, method: str = "rtn", **kwargs) -> "LowBitLinear":
        from torch_lowbit.quantize import quantize_weight

        qw = quantize_weight(linear.weight, bits=bits, group_size=group_size, method=method, **kwargs)
        return cls(qw, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.linear(x, self.qweight, self.bias, backend=self.backend)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, {self.packed_extra_repr()}"
