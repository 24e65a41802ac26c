"""torch.library.opcheck on every op (native and Triton): schema, fake kernel, autograd
registration and AOT dispatch all agree with the real kernel."""
import pytest
import torch

import torch_lowbit
from conftest import kernel_backends

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _op(backend, name):
    if backend == "triton":
        import torch_lowbit.triton_ops  # noqa: F401

        return getattr(torch.ops.torch_lowbit, f"triton_{name}")
    return getattr(torch.ops.torch_lowbit, name)


def _samples(device):
    qw = torch_lowbit.quantize_weight(torch.randn(9, 70), bits=3, group_size=32).to(device)
    qc = torch_lowbit.quantize_weight(torch.randn(6, 2, 3, 3), bits=4, group_size=-1).to(device)
    x = torch.randn(5, 70, device=device, requires_grad=True)
    xc = torch.randn(2, 4, 7, 8, device=device, requires_grad=True)
    w = torch.randn(11, 70, device=device, requires_grad=True)
    wc = torch.randn(6, 2, 3, 3, device=device, requires_grad=True)
    b = torch.randn(6, device=device, requires_grad=True)
    conv = ([1, 2], [1, 0, 2, 1], [1, 1], 2)
    return {
        "bcq_dequantize": (*qw.op_args(),),
        "lut_gemm": (x, *qw.op_args()),
        "tiled_gemm_bcq": (x, *qw.op_args()),
        "tiled_gemm": (x, w),
        "im2win_conv2d": (xc, wc, b, *conv),
        "im2win_conv2d_bcq": (xc, qc.planes, qc.alpha, qc.offset, list(qc.shape), qc.effective_group_size, b, *conv),
    }


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("name", ["bcq_dequantize", "lut_gemm", "tiled_gemm_bcq", "tiled_gemm", "im2win_conv2d", "im2win_conv2d_bcq"])
def test_opcheck(backend, device, name):
    torch.library.opcheck(_op(backend, name), _samples(device)[name])
