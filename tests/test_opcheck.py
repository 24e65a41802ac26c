"""torch.library.opcheck on every op (native and Triton): schema, fake kernel, autograd
registration and AOT dispatch all agree with the real kernel."""
import pytest
import torch

import torch_lowbit
from conftest import kernel_backends

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _op(backend, name):
    if backend == "triton":
        import torch_lowbit.backends.triton.ops  # noqa: F401

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
        "zero_point_fit": (torch.randn(13, 37, device=device), 3, 12, 1),
        "gptq_block": (torch.randn(9, 20, device=device), torch.eye(20, device=device) + torch.randn(20, 20, device=device).triu(1) * 0.1,
                       torch.randn(9, 2, 8, device=device).sort(-1).values, torch.randint(0, 2, (20,), device=device)),
    }


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("name", ["bcq_dequantize", "lut_gemm", "tiled_gemm_bcq", "tiled_gemm", "im2win_conv2d", "im2win_conv2d_bcq"])
def test_opcheck(backend, device, name):
    torch.library.opcheck(_op(backend, name), _samples(device)[name])


def test_opcheck_zero_point_fit():
    # The quantizer's helper op (no Triton twin, no autograd): compiled CPU kernel vs fake.
    torch.library.opcheck(torch.ops.torch_lowbit.zero_point_fit, _samples("cpu")["zero_point_fit"])


def test_opcheck_gptq_block():
    torch.library.opcheck(torch.ops.torch_lowbit.gptq_block, _samples("cpu")["gptq_block"])


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_opcheck_bcq_linear(backend, device):
    # bcq_linear: the op patched layers call; its kernel choice is the backend's.
    qw = torch_lowbit.quantize_weight(torch.randn(9, 70), bits=3, group_size=32).to(device)
    for m in (1, 5, 40):  # LUT and tiled sides of the CPU selector
        x = torch.randn(m, 70, device=device, requires_grad=True)
        torch.library.opcheck(_op(backend, "bcq_linear"), (x, *qw.op_args()))


def test_every_op_has_a_reference_default_and_a_fake():
    # The reference is each op's default kernel: meta tensors take the fake, and an op runs
    # (as plain PyTorch) even where no compiled kernel is registered for the device.
    from torch_lowbit import library

    qw = torch_lowbit.quantize_weight(torch.randn(9, 70), bits=3, group_size=32)
    meta = [t.to("meta") for t in (qw.planes, qw.alpha, qw.offset)]
    assert torch.ops.torch_lowbit.bcq_linear(torch.randn(4, 70, device="meta"), *meta, 70, 32).shape == (4, 9)
    for op in library.OPS:
        for name in (op.name, library.TRITON_PREFIX + op.name) if op.triton else (op.name,):
            packet = getattr(torch.ops.torch_lowbit, name)
            assert torch._C._dispatch_has_kernel_for_dispatch_key(packet.default.name(), "Meta"), name
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"torch_lowbit::{op.name}", "CompositeExplicitAutograd"), op.name
