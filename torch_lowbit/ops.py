"""The public ops: argument checks with clear errors, the family from torch_lowbit/dispatch.py,
then one registered op (schemas, fakes and autograd: torch_lowbit/library.py).

    torch_lowbit.ops.linear(x, qw, bias)             # F.linear(x, W, bias), W low-bit: the kernel
                                                     # the backend's selector picks for the shape
    torch_lowbit.ops.lut_gemm(x, qw)                 # F.linear(x, W) through LUT-GEMM tables
    torch_lowbit.ops.tiled_gemm(x, w)                # F.linear(x, w), w dense [N, K] or QuantizedWeight
    torch_lowbit.ops.im2win_conv2d(x, w, bias, ...)  # F.conv2d semantics, w dense or QuantizedWeight

Each takes backend="auto" | "cpu" | "cuda" | "triton" | "reference" (dispatch.py).
"""
from __future__ import annotations

import torch

from torch_lowbit import dispatch
from torch_lowbit.conv_geometry import IntPair, conv_padding, pair
from torch_lowbit.format import QuantizedWeight

ACTIVATION_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_activation(x: object, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in ACTIVATION_DTYPES:
        raise TypeError(f"{name}: expected float32, float16 or bfloat16, got {x.dtype}")
    return x


def _check_same_device(x: torch.Tensor, other: torch.Tensor | QuantizedWeight, name: str) -> None:
    if x.device != other.device:
        raise ValueError(f"{name}: is on {other.device} but x is on {x.device}; move both to one device")


def _linear_input(x: torch.Tensor, in_features: int) -> torch.Tensor:
    if x.dim() == 0:
        raise ValueError("x: expected at least 1 dimension [..., K], got a scalar")
    if x.shape[-1] != in_features:
        raise ValueError(f"x: last dimension is {x.shape[-1]}, expected in_features = {in_features}")
    return x.reshape(-1, in_features)


def _check_linear_weight(qw: object, name: str = "qw") -> QuantizedWeight:
    if not isinstance(qw, QuantizedWeight):
        raise TypeError(f"{name}: expected a torch_lowbit.QuantizedWeight, got {type(qw).__name__}")
    if len(qw.shape) != 2:
        raise ValueError(f"{name}: expected a linear weight [N, K], got a weight of shape {qw.shape}")
    return qw


def _bcq_product(op: str, x: torch.Tensor, qw: QuantizedWeight, backend: str, *bias: torch.Tensor | None) -> torch.Tensor:
    """x[..., K] @ W^T through `op` (bcq_linear, lut_gemm or tiled_gemm_bcq); qw already checked.
    The hot path of every patched layer: checks that cost about nothing, then one op."""
    if not isinstance(x, torch.Tensor) or x.dtype not in ACTIVATION_DTYPES:
        _check_activation(x)
    device = x.device
    if device != qw.planes.device:
        _check_same_device(x, qw, "qw")
    k = qw.in_features
    dim = x.dim()
    if dim == 0 or x.shape[-1] != k:
        _linear_input(x, k)  # raises, naming the problem
    x2 = x if dim == 2 else x.reshape(-1, k)  # a 2-D x goes in as it is: a view costs ~1 us
    y = dispatch.resolve(backend, device, op, x2.shape[0])(x2, qw.planes, qw.alpha, qw.offset, k, qw.effective_group_size, *bias)
    return y if dim == 2 else y.view(*x.shape[:-1], qw.out_features)


def linear(x: torch.Tensor, qw: QuantizedWeight, bias: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """F.linear(x, W, bias) for a low-bit W: one bcq_linear op, whose kernel (LUT-GEMM for few
    rows, tiled GEMM for many) the backend's selector picks (csrc/cpu/kernel_selector.h).

    Example:
        >>> import torch, torch_lowbit
        >>> qw = torch_lowbit.quantize_weight(torch.randn(48, 200), bits=3, group_size=64)
        >>> x = torch.randn(2, 5, 200)
        >>> torch.allclose(torch_lowbit.ops.linear(x, qw), x @ qw.dequantize().T, rtol=1e-4, atol=1e-4)
        True
    """
    _check_linear_weight(qw)
    return linear_prechecked(x, qw, bias, backend)


def linear_prechecked(x: torch.Tensor, qw: QuantizedWeight, bias: torch.Tensor | None, backend: str) -> torch.Tensor:
    """linear() for a weight known to be a linear QuantizedWeight (the patched modules' hot path)."""
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (qw.out_features,):
            raise ValueError(f"bias: expected a tensor of shape ({qw.out_features},), got {getattr(bias, 'shape', bias)!r}")
        if bias.device != x.device:
            _check_same_device(x, bias, "bias")
    return _bcq_product("bcq_linear", x, qw, backend, bias)


def lut_gemm(x: torch.Tensor, qw: QuantizedWeight, backend: str = "auto") -> torch.Tensor:
    """y = x @ W^T for a low-bit W through LUT-GEMM (F.linear semantics: x[..., K] -> y[..., N]).

    Example:
        >>> import torch, torch_lowbit
        >>> qw = torch_lowbit.quantize_weight(torch.randn(48, 200), bits=3, group_size=64)
        >>> x = torch.randn(2, 5, 200)
        >>> y = torch_lowbit.ops.lut_gemm(x, qw)
        >>> torch.allclose(y, x @ qw.dequantize().T, rtol=1e-4, atol=1e-4)
        True
    """
    _check_activation(x)
    return _bcq_product("lut_gemm", x, _check_linear_weight(qw), backend)


def tiled_gemm(x: torch.Tensor, w: torch.Tensor | QuantizedWeight, backend: str = "auto") -> torch.Tensor:
    """y = x @ w^T with a tiled GEMM kernel; w is dense [N, K] or a low-bit QuantizedWeight.

    Example:
        >>> import torch, torch_lowbit
        >>> x, w = torch.randn(7, 33), torch.randn(10, 33)
        >>> torch.allclose(torch_lowbit.ops.tiled_gemm(x, w), x @ w.T, rtol=1e-4, atol=1e-4)
        True
    """
    _check_activation(x)
    if isinstance(w, QuantizedWeight):
        return _bcq_product("tiled_gemm_bcq", x, _check_linear_weight(w, "w"), backend)
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w: expected a torch.Tensor or QuantizedWeight, got {type(w).__name__}")
    _check_activation(w, "w")
    if w.dim() != 2:
        raise ValueError(f"w: expected a 2-D weight [N, K], got shape {tuple(w.shape)}")
    _check_same_device(x, w, "w")
    x2 = _linear_input(x, w.shape[1])
    y = dispatch.resolve(backend, x.device, "tiled_gemm", x2.shape[0])(x2, w)
    return y.reshape(*x.shape[:-1], w.shape[0])


def im2win_conv2d(
    x: torch.Tensor,
    w: torch.Tensor | QuantizedWeight,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    backend: str = "auto",
) -> torch.Tensor:
    """F.conv2d through the im2win window layout; w dense [O, C/groups, R, S] or a QuantizedWeight of one.

    x may be NCHW or channels_last; the output has x's memory format. padding is an int, a pair,
    a 4-tuple (top, bottom, left, right), 'same' or 'valid'.

    Example:
        >>> import torch, torch.nn.functional as F, torch_lowbit
        >>> x, w = torch.randn(1, 6, 9, 9), torch.randn(4, 3, 3, 3)
        >>> y = torch_lowbit.ops.im2win_conv2d(x, w, stride=2, padding=1, groups=2)
        >>> torch.allclose(y, F.conv2d(x, w, stride=2, padding=1, groups=2), rtol=1e-4, atol=1e-4)
        True
    """
    _check_activation(x)
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D [N, C, H, W] input, got shape {tuple(x.shape)}")
    quantized = isinstance(w, QuantizedWeight)
    if quantized:
        shape = w.shape
        if len(shape) != 4:
            raise ValueError(f"w: expected a QuantizedWeight of a 4-D conv weight, got shape {shape}")
    elif isinstance(w, torch.Tensor):
        _check_activation(w, "w")
        if w.dim() != 4:
            raise ValueError(f"w: expected a 4-D weight [O, C/groups, R, S], got shape {tuple(w.shape)}")
        shape = tuple(w.shape)
    else:
        raise TypeError(f"w: expected a torch.Tensor or QuantizedWeight, got {type(w).__name__}")
    _check_same_device(x, w, "w")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    if x.shape[1] % groups or shape[0] % groups:
        raise ValueError(f"groups: {groups} must divide input channels {x.shape[1]} and output channels {shape[0]}")
    if shape[1] * groups != x.shape[1]:
        raise ValueError(f"w: expects {shape[1] * groups} input channels (C/groups = {shape[1]}), x has {x.shape[1]}")
    stride_, dilation_ = pair(stride, "stride"), pair(dilation, "dilation")
    if min(stride_) < 1:
        raise ValueError(f"stride: expected values >= 1, got {stride!r}")
    if min(dilation_) < 1:
        raise ValueError(f"dilation: expected values >= 1, got {dilation!r}")
    pads = conv_padding(padding, shape[2:], stride_, dilation_)
    for size, lo, hi, k, d, name in ((x.shape[2], pads[0], pads[1], shape[2], dilation_[0], "height"), (x.shape[3], pads[2], pads[3], shape[3], dilation_[1], "width")):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"x: padded input {name} {size + lo + hi} is smaller than the (dilated) kernel {d * (k - 1) + 1}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (shape[0],):
            raise ValueError(f"bias: expected a tensor of shape ({shape[0]},), got {getattr(bias, 'shape', bias)!r}")
        _check_same_device(x, bias, "bias")
    if quantized:
        run = dispatch.resolve(backend, x.device, "im2win_conv2d_bcq", x.shape[0])
        return run(x, w.planes, w.alpha, w.offset, list(shape), w.effective_group_size, bias, stride_, pads, dilation_, groups)
    return dispatch.resolve(backend, x.device, "im2win_conv2d", x.shape[0])(x, w, bias, stride_, pads, dilation_, groups)
