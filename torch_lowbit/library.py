"""Every torch_lowbit op, defined once: schema, fake (meta) kernel, autograd formula and the
plain-PyTorch reference (torch_lowbit/reference.py) registered as its default implementation.

Backends only add implementations of these definitions:
- the compiled CPU and CUDA kernels register under the same names from C++
  (`TORCH_LIBRARY_IMPL` in csrc/cpu/<op>/binding.cpp and csrc/cuda/<op>/binding.cpp);
- the Triton kernels register under `triton_<name>`, a second family made from the same
  definitions (torch_lowbit/backends/triton/ops.py), because CUDA C++ and Triton both serve CUDA
  tensors and torch_lowbit/dispatch.py picks between them per op and row count.

With the reference as the default (CompositeExplicitAutograd) kernel, `torch.ops.torch_lowbit.X`
works on meta tensors (the fake kernel), on devices without compiled kernels, and under
backward, with or without the extension; the device keys the extension registers take
precedence over it.

Quantized weights are frozen: backward gives gradients for the activations (and, for the dense
ops, the float weight and bias), never for planes/alpha/offset. The backward of a family
dequantizes with that family's own bcq_dequantize, so Triton backward never needs the native
extension.

    >>> import torch, torch_lowbit
    >>> qw = torch_lowbit.quantize_weight(torch.randn(8, 64), bits=3, group_size=32)
    >>> y = torch.ops.torch_lowbit.bcq_linear(torch.randn(2, 64), *qw.op_args())
    >>> y.shape
    torch.Size([2, 8])
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from torch_lowbit import reference
from torch_lowbit.conv_geometry import conv_out_hw

NAMESPACE = "torch_lowbit"
TRITON_PREFIX = "triton_"


@dataclass(frozen=True)
class OpDef:
    name: str
    schema: str  # "(args) -> result", without the name
    reference: Callable
    fake: Callable
    # backward(ctx, grad) and setup(ctx, inputs, output); ctx.family_prefix names the family.
    backward: Callable | None = None
    setup: Callable | None = None
    triton: bool = True  # also defined as triton_<name> (the kernel families; not the helpers)


# ---- shapes ----
def _conv_empty(x: torch.Tensor, out_channels: int, oh: int, ow: int) -> torch.Tensor:
    out = x.new_empty((x.shape[0], out_channels, oh, ow))
    return out.contiguous(memory_format=torch.channels_last) if reference.is_channels_last(x) else out


def _one_device(**tensors: torch.Tensor | None) -> None:
    """Raw calls mixing meta and real tensors reach the fake kernels (Meta wins the dispatch):
    refuse them as the real kernels do, instead of returning a meta result."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        raise RuntimeError(f"{', '.join(devices)}: expected on one device, got {', '.join(f'{n} on {d}' for n, d in devices.items())}")


def _fake_bcq_dequantize(planes, alpha, offset, in_features, group_size):
    _one_device(planes=planes, alpha=alpha, offset=offset)
    return alpha.new_empty((alpha.shape[2], in_features))


def _fake_bcq_linear(x, planes, alpha, offset, in_features, group_size, bias=None):
    _one_device(x=x, planes=planes, alpha=alpha, offset=offset, bias=bias)
    return x.new_empty((x.shape[0], alpha.shape[2]))


def _fake_zero_point_fit(w, bits, points, refits):
    return w.new_empty(w.shape[:1], dtype=torch.float32), w.new_empty(w.shape[:1], dtype=torch.float32)


def _fake_gptq_block(w, hinv, levels, group_of):
    return w.new_empty(w.shape, dtype=torch.long), w.new_empty(w.shape, dtype=torch.float32)


def _fake_tiled_gemm(x, weight):
    _one_device(x=x, weight=weight)
    return x.new_empty((x.shape[0], weight.shape[0]))


def _fake_conv(x, weight, bias, stride, padding, dilation, groups):
    _one_device(x=x, weight=weight, bias=bias)
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], stride, padding, dilation)
    return _conv_empty(x, weight.shape[0], oh, ow)


def _fake_conv_bcq(x, planes, alpha, offset, weight_shape, group_size, bias, stride, padding, dilation, groups):
    _one_device(x=x, planes=planes, alpha=alpha, offset=offset, bias=bias)
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], weight_shape[2], weight_shape[3], stride, padding, dilation)
    return _conv_empty(x, weight_shape[0], oh, ow)


# ---- autograd ----
def _dequantize(ctx, planes, alpha, offset, in_features, group_size) -> torch.Tensor:
    op = getattr(torch.ops.torch_lowbit, ctx.family_prefix + "bcq_dequantize")
    return op(planes, alpha.float(), offset.float(), in_features, group_size)


def _setup_bcq_linear(ctx, inputs, output):
    x, planes, alpha, offset, in_features, group_size, *bias = inputs  # bias: bcq_linear only
    ctx.save_for_backward(planes, alpha, offset)
    ctx.in_features, ctx.group_size, ctx.x_dtype = in_features, group_size, x.dtype
    ctx.bias = (bias[0].dtype if bias[0] is not None else None) if bias else False


def _backward_bcq_linear(ctx, grad):
    planes, alpha, offset = ctx.saved_tensors
    gx = None
    if ctx.needs_input_grad[0]:
        w = _dequantize(ctx, planes, alpha, offset, ctx.in_features, ctx.group_size)
        gx = (grad.float() @ w).to(ctx.x_dtype)
    if ctx.bias is False:
        return gx, None, None, None, None, None
    gb = grad.float().sum(0).to(ctx.bias) if ctx.bias is not None and ctx.needs_input_grad[6] else None
    return gx, None, None, None, None, None, gb


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
    w = _dequantize(ctx, planes, alpha, offset, k, group_size).reshape(weight_shape)
    gx = _conv_input_grad(ctx.x_shape, ctx.x_dtype, w, grad, stride, padding, dilation, groups) if ctx.needs_input_grad[0] else None
    gb = None
    if ctx.bias_dtype is not None and ctx.needs_input_grad[6]:
        gb = grad.float().sum(dim=(0, 2, 3)).to(ctx.bias_dtype)
    return gx, None, None, None, None, None, gb, None, None, None, None


# ---- the ops ----
# BCQ weight (docs/FORMAT.md): planes uint8 [bits, ceil(N/16), Kp/8, 16] (panel-major),
# alpha [bits, Kp/G, N], offset [Kp/G, N]; in_features = K (unpadded), group_size = G (the
# effective group size, dividing Kp). Conv padding is [top, bottom, left, right].
_BCQ_ARGS = "Tensor planes, Tensor alpha, Tensor offset, int in_features, int group_size"
_CONV_ARGS = "Tensor? bias, int[2] stride, int[4] padding, int[2] dilation, int groups"

OPS: tuple[OpDef, ...] = (
    # W[N, K] in alpha's dtype.
    OpDef("bcq_dequantize", f"({_BCQ_ARGS}) -> Tensor", reference.bcq_dequantize, _fake_bcq_dequantize),
    # y[M, N] = x[M, K] @ W^T (+ bias) by whichever kernel the backend's selector picks for
    # this call (LUT-GEMM for few rows, tiled GEMM beyond): what patched layers call.
    OpDef("bcq_linear", f"(Tensor x, {_BCQ_ARGS}, Tensor? bias=None) -> Tensor", reference.bcq_linear, _fake_bcq_linear, _backward_bcq_linear, _setup_bcq_linear),
    # The same product through tables of signed activation sums.
    OpDef("lut_gemm", f"(Tensor x, {_BCQ_ARGS}) -> Tensor", reference.bcq_linear, _fake_bcq_linear, _backward_bcq_linear, _setup_bcq_linear),
    # The same product, the weight expanded tile by tile.
    OpDef("tiled_gemm_bcq", f"(Tensor x, {_BCQ_ARGS}) -> Tensor", reference.bcq_linear, _fake_bcq_linear, _backward_bcq_linear, _setup_bcq_linear),
    # y[M, N] = x[M, K] @ weight[N, K]^T, dense weight.
    OpDef("tiled_gemm", "(Tensor x, Tensor weight) -> Tensor", reference.tiled_gemm, _fake_tiled_gemm, _backward_tiled_gemm, _setup_tiled_gemm),
    # F.conv2d(x, weight, bias, stride, 0, dilation, groups) on x zero-padded by `padding`;
    # x NCHW or channels_last, the output in x's memory format.
    OpDef("im2win_conv2d", f"(Tensor x, Tensor weight, {_CONV_ARGS}) -> Tensor", reference.im2win_conv2d, _fake_conv, _backward_conv, _setup_conv),
    # The same with a BCQ weight of the flattened filters [O, C/groups * R * S];
    # weight_shape = [O, C/groups, R, S].
    OpDef("im2win_conv2d_bcq", f"(Tensor x, Tensor planes, Tensor alpha, Tensor offset, int[4] weight_shape, int group_size, {_CONV_ARGS}) -> Tensor",
          reference.im2win_conv2d_bcq, _fake_conv_bcq, _backward_conv_bcq, _setup_conv_bcq),
    # Quantizer helper (method="mse"): per group of w [groups, G], the zero-point grid (scale,
    # zp) of lowest squared error among `points` clippings, each refit `refits` times.
    OpDef("zero_point_fit", "(Tensor w, int bits, int points, int refits) -> (Tensor, Tensor)", reference.zero_point_fit, _fake_zero_point_fit, triton=False),
    # Quantizer helper (method="gptq"): the sequential column loop of one block, codes on fixed
    # grids with each column's error spread over the later columns.
    OpDef("gptq_block", "(Tensor w, Tensor hinv, Tensor levels, Tensor group_of) -> (Tensor, Tensor)", reference.gptq_block, _fake_gptq_block, triton=False),
)
OP_NAMES = tuple(op.name for op in OPS)

_LIB = torch.library.Library(NAMESPACE, "DEF")  # noqa: TOR901 (kept for the process's lifetime)


def _with_family(setup: Callable, prefix: str) -> Callable:
    def setup_context(ctx, inputs, output):
        setup(ctx, inputs, output)
        ctx.family_prefix = prefix

    return setup_context


def _define_family(prefix: str) -> None:
    for op in OPS:
        if prefix and not op.triton:
            continue
        name = prefix + op.name
        _LIB.define(name + op.schema)
        qualname = f"{NAMESPACE}::{name}"
        torch.library.register_fake(qualname, op.fake, lib=_LIB)
        if op.backward is not None:
            torch.library.register_autograd(qualname, op.backward, setup_context=_with_family(op.setup, prefix), lib=_LIB)


_define_family("")
_define_family(TRITON_PREFIX)
for _op in OPS:
    _LIB.impl(_op.name, _op.reference, "CompositeExplicitAutograd")


def register_family_kernels(prefix: str, kernels: dict[str, Callable], dispatch_keys: tuple[str, ...]) -> None:
    """Register one backend's Python kernels ({op name: fn}) for the `prefix` family."""
    unknown = set(kernels) - set(OP_NAMES)
    if unknown:
        raise ValueError(f"kernels: unknown ops {sorted(unknown)} (defined: {OP_NAMES})")
    for name, fn in kernels.items():
        for key in dispatch_keys:
            _LIB.impl(prefix + name, fn, key)
