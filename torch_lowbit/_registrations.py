"""Fake (meta) kernels and autograd for every op, native (C++/CUDA) and Triton alike.

Quantized weights are frozen: backward gives gradients for the activations (and, for the dense
ops, the float weight and bias), never for planes/alpha/offset.
"""
from __future__ import annotations

import torch

# Ops that share a signature share their fake kernel and autograd; each name is registered for
# the native op "torch_lowbit::X" and the Triton op "torch_lowbit::triton_X".
BCQ_LINEAR_OPS = ("lut_gemm", "tiled_gemm_bcq")
ALL_OPS = ("bcq_dequantize", "lut_gemm", "tiled_gemm", "tiled_gemm_bcq", "im2win_conv2d", "im2win_conv2d_bcq")


def conv_out_hw(h: int, w: int, r: int, s: int, stride, padding, dilation) -> tuple[int, int]:
    oh = (h + padding[0] + padding[1] - dilation[0] * (r - 1) - 1) // stride[0] + 1
    ow = (w + padding[2] + padding[3] - dilation[1] * (s - 1) - 1) // stride[1] + 1
    return oh, ow


def _conv_empty(x: torch.Tensor, out_channels: int, oh: int, ow: int) -> torch.Tensor:
    out = x.new_empty((x.shape[0], out_channels, oh, ow))
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def _fake_bcq_dequantize(planes, alpha, offset, in_features, group_size):
    return alpha.new_empty((alpha.shape[2], in_features))


def _fake_bcq_linear(x, planes, alpha, offset, in_features, group_size):
    return x.new_empty((x.shape[0], alpha.shape[2]))


def _fake_tiled_gemm(x, weight):
    return x.new_empty((x.shape[0], weight.shape[0]))


def _fake_conv(x, weight, bias, stride, padding, dilation, groups):
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], stride, padding, dilation)
    return _conv_empty(x, weight.shape[0], oh, ow)


def _fake_conv_bcq(x, planes, alpha, offset, weight_shape, group_size, bias, stride, padding, dilation, groups):
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], weight_shape[2], weight_shape[3], stride, padding, dilation)
    return _conv_empty(x, weight_shape[0], oh, ow)


FAKES = {
    "bcq_dequantize": _fake_bcq_dequantize,
    "lut_gemm": _fake_bcq_linear,
    "tiled_gemm_bcq": _fake_bcq_linear,
    "tiled_gemm": _fake_tiled_gemm,
    "im2win_conv2d": _fake_conv,
    "im2win_conv2d_bcq": _fake_conv_bcq,
}


# ---- autograd ----
def _setup_bcq_linear(ctx, inputs, output):
    x, planes, alpha, offset, in_features, group_size = inputs
    ctx.save_for_backward(planes, alpha, offset)
    ctx.in_features, ctx.group_size, ctx.x_dtype = in_features, group_size, x.dtype


def _backward_bcq_linear(ctx, grad):
    planes, alpha, offset = ctx.saved_tensors
    w = torch.ops.torch_lowbit.bcq_dequantize(planes, alpha.float(), offset.float(), ctx.in_features, ctx.group_size)
    return (grad.float() @ w).to(ctx.x_dtype), None, None, None, None, None


def _setup_tiled_gemm(ctx, inputs, output):
    x, weight = inputs
    ctx.save_for_backward(x, weight)


def _backward_tiled_gemm(ctx, grad):
    x, weight = ctx.saved_tensors
    gx = (grad.float() @ weight.float()).to(x.dtype) if ctx.needs_input_grad[0] else None
    gw = (grad.float().t() @ x.float()).to(weight.dtype) if ctx.needs_input_grad[1] else None
    return gx, gw


def _conv_input_grad(x_shape, x_dtype, weight, grad, stride, padding, dilation, groups):
    n, c, h, w = x_shape
    padded = (n, c, h + padding[0] + padding[1], w + padding[2] + padding[3])
    g = torch.nn.grad.conv2d_input(padded, weight.float(), grad.float(), tuple(stride), 0, tuple(dilation), groups)
    return g[:, :, padding[0] : padding[0] + h, padding[2] : padding[2] + w].to(x_dtype)


def _setup_conv(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(x, weight)
    ctx.args = (stride, padding, dilation, groups)
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward_conv(ctx, grad):
    x, weight = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.args
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        gx = _conv_input_grad(x.shape, x.dtype, weight, grad, stride, padding, dilation, groups)
    if ctx.needs_input_grad[1]:
        xp = torch.nn.functional.pad(x.float(), (padding[2], padding[3], padding[0], padding[1]))
        gw = torch.nn.grad.conv2d_weight(xp, weight.shape, grad.float(), tuple(stride), 0, tuple(dilation), groups).to(weight.dtype)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
        gb = grad.float().sum(dim=(0, 2, 3)).to(ctx.bias_dtype)
    return gx, gw, gb, None, None, None, None


def _setup_conv_bcq(ctx, inputs, output):
    x, planes, alpha, offset, weight_shape, group_size, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(planes, alpha, offset)
    ctx.args = (weight_shape, group_size, stride, padding, dilation, groups)
    ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward_conv_bcq(ctx, grad):
    planes, alpha, offset = ctx.saved_tensors
    weight_shape, group_size, stride, padding, dilation, groups = ctx.args
    k = weight_shape[1] * weight_shape[2] * weight_shape[3]
    w = torch.ops.torch_lowbit.bcq_dequantize(planes, alpha.float(), offset.float(), k, group_size).reshape(weight_shape)
    gx = _conv_input_grad(ctx.x_shape, ctx.x_dtype, w, grad, stride, padding, dilation, groups) if ctx.needs_input_grad[0] else None
    gb = None
    if ctx.bias_dtype is not None and ctx.needs_input_grad[6]:
        gb = grad.float().sum(dim=(0, 2, 3)).to(ctx.bias_dtype)
    return gx, None, None, None, None, None, gb, None, None, None, None


AUTOGRAD = {
    "lut_gemm": (_backward_bcq_linear, _setup_bcq_linear),
    "tiled_gemm_bcq": (_backward_bcq_linear, _setup_bcq_linear),
    "tiled_gemm": (_backward_tiled_gemm, _setup_tiled_gemm),
    "im2win_conv2d": (_backward_conv, _setup_conv),
    "im2win_conv2d_bcq": (_backward_conv_bcq, _setup_conv_bcq),
}


def register(prefix: str = "") -> None:
    """Register fakes and autograd for torch_lowbit::{prefix}{op} for every op."""
    for name in ALL_OPS:
        qualname = f"torch_lowbit::{prefix}{name}"
        torch.library.register_fake(qualname)(FAKES[name])
        if name in AUTOGRAD:
            backward, setup = AUTOGRAD[name]
            torch.library.register_autograd(qualname, backward, setup_context=setup)
