"""Low-bit modules that patch() swaps in: LowBitLinear (for nn.Linear and HF Conv1D) and
LowBitConv2d (for nn.Conv2d).

The packed weight lives in buffers (planes, alpha, offset), so .to(device), state_dict and
save/load move it like any other tensor; there is no float weight. .half()/.bfloat16() leave the
packed weight alone (its scales stay fp16/fp32 by design): the activation dtype decides the
compute dtype. Bias stays a float parameter.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_lowbit import ops
from torch_lowbit.config import DEFAULT_METHOD, QuantConfig
from torch_lowbit.format import QuantizedWeight, empty_planes


# Integer dtypes the scales are viewed as while FSDP2 holds them (torch_lowbit/fsdp.py).
_FLOAT_OF_VIEW = {torch.int16: torch.float16, torch.int32: torch.float32}


class PackedWeightMixin:
    """Holds a QuantizedWeight's tensors as buffers. The QuantizedWeight the ops take is built
    and validated once, and again only when a buffer is replaced (.to(), load), never per call:
    forward costs about what nn.Linear's does."""

    planes: torch.Tensor
    alpha: torch.Tensor
    offset: torch.Tensor

    def _init_packed(self, qw: QuantizedWeight) -> None:
        self.register_buffer("planes", qw.planes)
        self.register_buffer("alpha", qw.alpha)
        self.register_buffer("offset", qw.offset)
        self.weight_shape = tuple(qw.shape)
        self.bits, self.group_size, self.method = qw.bits, qw.group_size, qw.method
        self.backend = "auto"  # set to force a kernel backend for this module

    @property
    def quantized_weight(self) -> QuantizedWeight:
        qw = self.__dict__.get("_qw_cache")
        buffers = self._buffers  # read directly: Module.__getattr__ costs ~0.5 us a name
        try:
            planes, alpha, offset = buffers["planes"], buffers["alpha"], buffers["offset"]
        except KeyError:  # held as parameters for FSDP2 (torch_lowbit/fsdp.py)
            return self._quantized_weight_from_parameters()
        if qw is None or qw.planes is not planes or qw.alpha is not alpha or qw.offset is not offset:
            qw = QuantizedWeight(planes, alpha, offset, self.weight_shape, self.group_size, self.method)
            self.__dict__["_qw_cache"] = qw
        return qw

    def _quantized_weight_from_parameters(self) -> QuantizedWeight:
        # FSDP2 swaps the (un)sharded parameters in and out, so nothing is cached; the scales
        # are stored as integer views, which mixed precision does not cast (fsdp.py).
        params, dtype = self._parameters, self.scale_dtype
        return QuantizedWeight(params["planes"], params["alpha"].view(dtype), params["offset"].view(dtype),
                               self.weight_shape, self.group_size, self.method)

    @property
    def scale_dtype(self) -> torch.dtype:
        """fp16 or fp32: the stored scales' dtype (also while FSDP holds them as integer views)."""
        return _FLOAT_OF_VIEW.get(self.alpha.dtype, self.alpha.dtype)

    def _call_bias(self) -> torch.Tensor | None:
        # Without grad a detached bias: an nn.Parameter argument sends the op call through
        # Parameter.__torch_function__ (~10 us a call, measured).
        bias = self._parameters.get("bias")
        if bias is None or torch.is_grad_enabled():
            return bias
        return bias.detach()

    @property
    def config(self) -> QuantConfig:
        return QuantConfig(self.bits, self.group_size, self.method, self.scale_dtype)

    @property
    def qweight(self) -> torch.Tensor:
        """The packed bit-planes, under the name PEFT and GPTQ-style tools look for to find a
        quantized layer's device (its integer dtype tells them not to cast adapters to it)."""
        return self.planes

    @property
    def packed_nbytes(self) -> int:
        return self.quantized_weight.nbytes

    def _apply(self, fn, recurse=True):
        # Keep the packed scales' dtype through .half()/.bfloat16()/.float(); device moves apply.
        scale_dtype = self.alpha.dtype
        out = super()._apply(fn, recurse)
        if self.alpha.dtype != scale_dtype:
            self.alpha = self.alpha.to(scale_dtype)
            self.offset = self.offset.to(scale_dtype)
        return out

    def quant_info(self) -> dict:
        """What save() records for this module (its config and weight shape)."""
        return {"shape": list(self.weight_shape), **self.config.to_dict()}

    def packed_extra_repr(self) -> str:
        return f"bits={self.bits}, group_size={self.group_size}, method={self.method!r}"


class LowBitLinear(PackedWeightMixin, nn.Linear):
    """A frozen low-bit nn.Linear: y = x @ W^T + b with W in BCQ form.

    It stays an nn.Linear (PEFT and other tools see a Linear) but has no float `weight`. It also
    stands in for HuggingFace's Conv1D (whose weight is stored transposed): patch() quantizes
    Conv1D.weight.T, after which the layer is an ordinary [out, in] linear map.

    Example:
        >>> import torch, torch_lowbit
        >>> lin = torch.nn.Linear(96, 40)
        >>> q = torch_lowbit.LowBitLinear.from_float(lin, bits=4, group_size=32)
        >>> q(torch.randn(3, 96)).shape
        torch.Size([3, 40])
    """

    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        nn.Module.__init__(self)
        if len(qw.shape) != 2:
            raise ValueError(f"qw: expected a linear weight [N, K], got shape {qw.shape}")
        self.in_features, self.out_features = qw.in_features, qw.out_features
        self._init_packed(qw)
        self.register_parameter("weight", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=bias.requires_grad)

    @classmethod
    def from_float(cls, module: nn.Module, bits: int = 3, group_size: int = 128, method: str = DEFAULT_METHOD, **kwargs) -> "LowBitLinear":
        """From an nn.Linear, or an HF Conv1D (weight [in, out])."""
        from torch_lowbit.quantize import quantize_weight

        weight = module.weight.t() if is_hf_conv1d(module) else module.weight
        return cls(quantize_weight(weight, bits=bits, group_size=group_size, method=method, **kwargs), module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.linear_prechecked(x, self.quantized_weight, self._call_bias(), self.backend)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, {self.packed_extra_repr()}"


class LowBitConv2d(PackedWeightMixin, nn.Conv2d):
    """A frozen low-bit nn.Conv2d running im2win convolution on the packed weight.

    Example:
        >>> import torch, torch_lowbit
        >>> conv = torch.nn.Conv2d(8, 16, 3, padding=1)
        >>> q = torch_lowbit.LowBitConv2d.from_float(conv, bits=4, group_size=32)
        >>> q(torch.randn(1, 8, 10, 10)).shape
        torch.Size([1, 16, 10, 10])
    """

    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None, stride, padding, dilation, groups: int) -> None:
        nn.Module.__init__(self)
        if len(qw.shape) != 4:
            raise ValueError(f"qw: expected a conv weight [O, C/g, R, S], got shape {qw.shape}")
        self.out_channels, self.in_channels = qw.shape[0], qw.shape[1] * groups
        self.kernel_size = tuple(qw.shape[2:])
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.padding_mode = "zeros"
        self.transposed, self.output_padding = False, (0, 0)
        self._init_packed(qw)
        self.register_parameter("weight", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=bias.requires_grad)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, bits: int = 3, group_size: int = 128, method: str = DEFAULT_METHOD, **kwargs) -> "LowBitConv2d":
        from torch_lowbit.quantize import quantize_weight

        if conv.padding_mode != "zeros":
            raise ValueError(f"conv: padding_mode={conv.padding_mode!r} is not supported (only 'zeros')")
        qw = quantize_weight(conv.weight, bits=bits, group_size=group_size, method=method, **kwargs)
        return cls(qw, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.im2win_conv2d(x, self.quantized_weight, self.bias, self.stride, self.padding, self.dilation, self.groups, backend=self.backend)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}, {self.packed_extra_repr()}"


def skeleton(kind: str, module: nn.Module, shape: tuple[int, ...], config: QuantConfig) -> nn.Module:
    """An empty low-bit module on the meta device to stand in for `module` ("linear", "conv1d"
    or "conv2d") with a weight of `shape` (what load() fills): patch() on a meta model and
    load() both build skeletons here."""
    qw = QuantizedWeight(*empty_planes(shape, config.bits, config.group_size, config.scale_dtype, "meta"), shape, config.group_size, config.method)
    bias = getattr(module, "bias", None)
    bias = None if bias is None else torch.empty_like(bias, device="meta").requires_grad_(bias.requires_grad)
    if kind == "conv2d":
        return LowBitConv2d(qw, bias, module.stride, module.padding, module.dilation, module.groups)
    return LowBitLinear(qw, bias)


def float_module(module: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A float nn.Linear / nn.Conv2d holding a low-bit layer's dequantized weight (in `dtype`)
    and its bias: what dequantize() and the exact LoRA merge turn a low-bit layer into."""
    weight = module.quantized_weight.dequantize().to(dtype)
    bias = module.bias is not None
    if isinstance(module, LowBitConv2d):
        new = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding, module.dilation,
                        module.groups, bias=bias, device=weight.device, dtype=dtype)
    else:
        new = nn.Linear(module.in_features, module.out_features, bias=bias, device=weight.device, dtype=dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias:
            new.bias.copy_(module.bias)
    return new


def is_hf_conv1d(module: nn.Module) -> bool:
    """HuggingFace's GPT-2 style Conv1D (weight [in, out]), without importing transformers."""
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers") and hasattr(module, "nf")


def is_low_bit(module: nn.Module) -> bool:
    return isinstance(module, PackedWeightMixin)
