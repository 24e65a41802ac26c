"""The Triton family's backward dequantizes with the Triton bcq_dequantize, so it works where
the compiled extension's kernel is missing (here: the native CPU bcq_dequantize replaced by one
that fails), under Triton's interpreter on CPU tensors."""
import pytest
import torch

import torch_lowbit
from conftest import rel_err
from torch_lowbit import dispatch

pytestmark = pytest.mark.skipif(not dispatch.triton_available() or torch.cuda.is_available(),
                                reason="runs the Triton interpreter on CPU tensors")


def _dequantized(qw):
    planes, alpha, offset, k, g = qw.op_args()
    return torch_lowbit.reference.bcq_dequantize(planes, alpha.float(), offset.float(), k, g).reshape(qw.shape)


def _fail(*args):
    raise AssertionError("the native bcq_dequantize must not run in the Triton family's backward")


@pytest.fixture
def native_dequantize_unavailable():
    with torch.library._scoped_library("torch_lowbit", "IMPL") as lib:
        lib.impl("bcq_dequantize", _fail, "CPU")
        yield


def test_triton_forward_and_backward_without_native_dequantize(native_dequantize_unavailable):
    qw = torch_lowbit.quantize_weight(torch.randn(13, 90), bits=3, group_size=32)
    w = _dequantized(qw)
    with pytest.raises(AssertionError, match="must not run"):
        torch.ops.torch_lowbit.bcq_dequantize(*qw.op_args())  # the fixture really took it away
    for op in (torch_lowbit.ops.lut_gemm, torch_lowbit.ops.tiled_gemm, torch_lowbit.ops.linear):
        x = torch.randn(4, 90, requires_grad=True)
        g = torch.randn(4, 13)
        y = op(x, qw, backend="triton")
        assert rel_err(y.detach(), x.detach() @ w.T) < 1e-5
        (y * g).sum().backward()
        assert rel_err(x.grad, g @ w) < 1e-5


def test_triton_conv_backward_without_native_dequantize(native_dequantize_unavailable):
    qw = torch_lowbit.quantize_weight(torch.randn(4, 3, 3, 3), bits=4, group_size=32)
    w = _dequantized(qw)
    x = torch.randn(1, 3, 7, 6, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    out = torch_lowbit.ops.im2win_conv2d(x, qw, padding=1, backend="triton")
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (torch.nn.functional.conv2d(x2, w, padding=1) * g).sum().backward()
    assert rel_err(x.grad, x2.grad) < 1e-5


def test_triton_bcq_dequantize_matches_reference():
    for bits, n, k, gs in [(1, 7, 33, 32), (3, 17, 300, 128), (8, 33, 70, -1)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=gs, scale_dtype=torch.float32)
        out = dispatch.implementation("triton", "bcq_dequantize")(*qw.op_args())
        assert torch.allclose(out, torch_lowbit.reference.bcq_dequantize(*qw.op_args()), atol=1e-6), (bits, n, k)
