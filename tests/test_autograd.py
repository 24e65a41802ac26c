"""Backward through frozen low-bit weights (activations only) and through the dense ops."""
import pytest
import torch
import torch.nn.functional as F

import torch_lowbit
from conftest import kernel_backends, rel_err


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_linear_grad_matches_dequantized(backend, device):
    qw = torch_lowbit.quantize_weight(torch.randn(13, 90), bits=3, group_size=32).to(device)
    w = qw.dequantize().detach()
    for op in (torch_lowbit.ops.lut_gemm, torch_lowbit.ops.tiled_gemm):
        x = torch.randn(4, 90, device=device, requires_grad=True)
        g = torch.randn(4, 13, device=device)
        (op(x, qw, backend=backend) * g).sum().backward()
        assert rel_err(x.grad.cpu(), (g @ w).cpu()) < 1e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_dense_gemm_grads(backend, device):
    x = torch.randn(6, 40, device=device, requires_grad=True)
    w = torch.randn(9, 40, device=device, requires_grad=True)
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    g = torch.randn(6, 9, device=device)
    (torch_lowbit.ops.tiled_gemm(x, w, backend=backend) * g).sum().backward()
    (F.linear(x2, w2) * g).sum().backward()
    assert rel_err(x.grad.cpu(), x2.grad.cpu()) < 1e-5 and rel_err(w.grad.cpu(), w2.grad.cpu()) < 1e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_conv_grads(backend, device):
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    x = torch.randn(2, 4, 9, 10, device=device, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, device=device, requires_grad=True)
    b = torch.randn(6, device=device, requires_grad=True)
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    out = torch_lowbit.ops.im2win_conv2d(x, w, b, backend=backend, **kw)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (F.conv2d(*leaves, **kw) * g).sum().backward()
    for mine, ref in zip((x, w, b), leaves):
        assert rel_err(mine.grad.cpu(), ref.grad.cpu()) < 1e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_lowbit_conv_input_grad_with_asymmetric_padding(backend, device):
    qw = torch_lowbit.quantize_weight(torch.randn(4, 3, 2, 2), bits=4, group_size=32).to(device)
    x = torch.randn(1, 3, 6, 7, device=device, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    b = torch.randn(4, device=device, requires_grad=True)
    out = torch_lowbit.ops.im2win_conv2d(x, qw, b, padding="same", backend=backend)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (F.conv2d(x2, qw.dequantize(), b.detach(), padding="same") * g).sum().backward()
    assert rel_err(x.grad.cpu(), x2.grad.cpu()) < 1e-5
    assert rel_err(b.grad.cpu(), g.sum(dim=(0, 2, 3)).cpu()) < 1e-5


def test_compile_fullgraph_through_ops():
    qw = torch_lowbit.quantize_weight(torch.randn(16, 64), bits=3, group_size=32)

    def f(x):
        return torch_lowbit.ops.linear(x, qw).relu().sum(dim=-1)

    x = torch.randn(3, 64)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x), f(x))
