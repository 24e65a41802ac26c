"""The public ops: argument checks with clear errors, backend choice, then one registered op.

    torch_lowbit.ops.lut_gemm(x, qw)                 # F.linear(x, W) with W low-bit, via tables
    torch_lowbit.ops.tiled_gemm(x, w)                # F.linear(x, w), w dense [N, K] or QuantizedWeight
    torch_lowbit.ops.im2win_conv2d(x, w, bias, ...)  # F.conv2d semantics, w dense or QuantizedWeight
    torch_lowbit.ops.linear(x, qw, bias)             # picks lut_gemm or tiled_gemm by shape (policy.py)

Each takes backend="auto" | "cpu" | "cuda" | "triton" | "reference" (backends.py).
"""
from __future__ import annotations

from typing import Sequence

import torch

from torch_lowbit import backends, policy, reference
from torch_lowbit.format import QuantizedWeight

ACTIVATION_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
IntPair = int | Sequence[int]


def _check_activation(x: object, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in ACTIVATION_DTYPES:
        raise TypeError(f"{name}: expected float32, float16 or bfloat16, got {x.dtype}")
    return x


def _check_same_device(x: torch.Tensor, other: torch.Tensor | QuantizedWeight, name: str) -> None:
    if x.device != other.device:
        raise ValueError(f"{name}: is on {other.device} but x is on {x.device}; move both to one device")


def _native(name: str, backend: str):
    return getattr(torch.ops.torch_lowbit, name if backend == "native" else f"triton_{name}")


def _ensure_loaded(backend: str) -> None:
    # The native ops are registered when torch_lowbit is imported; the Triton ops on first use,
    # so that importing torch_lowbit never imports triton.
    if backend == "triton":
        import torch_lowbit.triton_ops  # noqa: F401


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
    _check_linear_weight(qw)
    _check_same_device(x, qw, "qw")
    x2 = _linear_input(x, qw.in_features)
    which = backends.resolve(backend, x.device, "lut_gemm", x2.shape[0])
    if which == "reference":
        y = reference.lut_gemm(x2, *qw.op_args())
    else:
        _ensure_loaded(which)
        y = _native("lut_gemm", which)(x2, *qw.op_args())
    return y.reshape(*x.shape[:-1], qw.out_features)


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
        _check_linear_weight(w, "w")
        _check_same_device(x, w, "w")
        x2 = _linear_input(x, w.in_features)
        which = backends.resolve(backend, x.device, "tiled_gemm_bcq", x2.shape[0])
        if which == "reference":
            y = reference.tiled_gemm_bcq(x2, *w.op_args())
        else:
            _ensure_loaded(which)
            y = _native("tiled_gemm_bcq", which)(x2, *w.op_args())
        return y.reshape(*x.shape[:-1], w.out_features)
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w: expected a torch.Tensor or QuantizedWeight, got {type(w).__name__}")
    _check_activation(w, "w")
    if w.dim() != 2:
        raise ValueError(f"w: expected a 2-D weight [N, K], got shape {tuple(w.shape)}")
    _check_same_device(x, w, "w")
    x2 = _linear_input(x, w.shape[1])
    which = backends.resolve(backend, x.device, "tiled_gemm", x2.shape[0])
    if which == "reference":
        y = reference.tiled_gemm(x2, w)
    else:
        _ensure_loaded(which)
        y = _native("tiled_gemm", which)(x2, w)
    return y.reshape(*x.shape[:-1], w.shape[0])


def linear(x: torch.Tensor, qw: QuantizedWeight, bias: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """F.linear(x, W, bias) for a low-bit W: LUT-GEMM for few rows, tiled GEMM for many (policy.py)."""
    _check_activation(x)
    _check_linear_weight(qw)
    rows = x.numel() // max(x.shape[-1], 1)
    if policy.use_lut(rows, qw.bits, qw.out_features, qw.in_features, x.device, x.dtype):
        y = lut_gemm(x, qw, backend=backend)
    else:
        y = tiled_gemm(x, qw, backend=backend)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y


def _pair(value: IntPair, name: str) -> list[int]:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int or a pair of ints, got bool")
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def conv_padding(padding: IntPair | str, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> list[int]:
    """F.conv2d's padding as [top, bottom, left, right] ('same' puts the odd extra at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0, 0, 0]
        if padding != "same":
            raise ValueError(f"padding: expected an int, a pair, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError("padding: 'same' needs stride 1 (as in F.conv2d)")
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and all(isinstance(v, int) for v in padding):
        pads = [int(v) for v in padding]
    else:
        ph, pw = _pair(padding, "padding")
        pads = [ph, ph, pw, pw]
    if any(p < 0 for p in pads):
        raise ValueError(f"padding: expected values >= 0, got {padding!r}")
    return pads


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
    stride_, dilation_ = _pair(stride, "stride"), _pair(dilation, "dilation")
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
    which = backends.resolve(backend, x.device, "im2win_conv2d_bcq" if quantized else "im2win_conv2d", x.shape[0])
    if quantized:
        args = (x, w.planes, w.alpha, w.offset, list(shape), w.effective_group_size, bias, stride_, pads, dilation_, groups)
        if which == "reference":
            return reference.im2win_conv2d_bcq(*args)
        _ensure_loaded(which)
        return _native("im2win_conv2d_bcq", which)(*args)
    args = (x, w, bias, stride_, pads, dilation_, groups)
    if which == "reference":
        return reference.im2win_conv2d(*args)
    _ensure_loaded(which)
    return _native("im2win_conv2d", which)(*args)
