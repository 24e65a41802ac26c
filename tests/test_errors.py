"""Bad input gets a clear ValueError/TypeError naming the argument, never a crash."""
import pytest
import torch

import torch_lowbit
from torch_lowbit import dispatch

ops = torch_lowbit.ops
QW = torch_lowbit.quantize_weight(torch.randn(8, 64), bits=3, group_size=32)
QC = torch_lowbit.quantize_weight(torch.randn(4, 2, 3, 3), bits=3, group_size=32)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: ops.lut_gemm(torch.randn(2, 64).long(), QW), TypeError, "x"),
        (lambda: ops.lut_gemm(torch.randn(2, 64).double(), QW), TypeError, "x"),
        (lambda: ops.lut_gemm(torch.randn(2, 63), QW), ValueError, "x"),
        (lambda: ops.lut_gemm(torch.randn(2, 64), torch.randn(8, 64)), TypeError, "qw"),
        (lambda: ops.lut_gemm(torch.randn(2, 27), QC), ValueError, "qw"),
        (lambda: ops.lut_gemm(torch.randn(2, 64, device="meta"), QW), ValueError, "qw"),
        (lambda: ops.lut_gemm(torch.randn(2, 64), QW, backend="gpu"), ValueError, "backend"),
        (lambda: ops.tiled_gemm(torch.randn(2, 64), torch.randn(8, 63)), ValueError, "x"),
        (lambda: ops.tiled_gemm(torch.randn(2, 64), torch.randn(8, 64, 1)), ValueError, "w"),
        (lambda: ops.tiled_gemm(torch.randn(2, 64), [1, 2]), TypeError, "w"),
        (lambda: ops.im2win_conv2d(torch.randn(4, 9, 9), torch.randn(4, 4, 3, 3)), ValueError, "x"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3)), ValueError, "w"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 5, 9, 9), torch.randn(4, 2, 3, 3), groups=2), ValueError, "groups"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 3, 3, 3)), ValueError, "w"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3), padding=-1), ValueError, "padding"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3), stride=0), ValueError, "stride"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3), stride=2, padding="same"), ValueError, "padding"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 2, 2), torch.randn(4, 4, 3, 3)), ValueError, "x"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3), bias=torch.randn(3)), ValueError, "bias"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3), groups=0), ValueError, "groups"),
        (lambda: ops.im2win_conv2d(torch.randn(1, 4, 9, 9), QW), ValueError, "w"),
    ],
)
def test_bad_input_raises_named_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("scale", [1e6, 1e-9], ids=["overflow", "underflow"])
def test_weights_float16_scales_cannot_hold_are_refused(scale):
    w = torch.randn(8, 64) * scale
    with pytest.raises(ValueError, match="scale_dtype=torch.float32"):
        torch_lowbit.quantize_weight(w, bits=3, group_size=32)
    qw = torch_lowbit.quantize_weight(w, bits=3, group_size=32, scale_dtype=torch.float32)
    assert ((qw.dequantize() - w).norm() / w.norm()).item() < 0.3


def test_unavailable_backend_says_so(monkeypatch):
    x = torch.randn(2, 64)
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        ops.lut_gemm(x, QW, backend="cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    if dispatch.triton_available():
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            ops.lut_gemm(x, QW, backend="triton")


def test_direct_op_call_with_bad_shapes_raises_not_crashes():
    with pytest.raises(RuntimeError, match="alpha"):
        torch.ops.torch_lowbit.lut_gemm(torch.randn(2, 64), QW.planes, QW.alpha[:, :1], QW.offset, 64, 32)
    with pytest.raises(RuntimeError, match="in_features"):
        torch.ops.torch_lowbit.lut_gemm(torch.randn(2, 640), QW.planes, QW.alpha, QW.offset, 640, 32)
    with pytest.raises(RuntimeError, match="group_size"):
        torch.ops.torch_lowbit.lut_gemm(torch.randn(2, 64), QW.planes, QW.alpha, QW.offset, 64, 24)


def test_import_error_message_says_how_to_build():
    from torch_lowbit.backends import native

    assert "pip install --no-build-isolation -e ." in native._BUILD_HINT
