"""im2win_conv2d (dense and low-bit weights) against the reference (F.conv2d) on every backend."""
import pytest
import torch
import torch.nn.functional as F

import torch_lowbit
from conftest import TOL, kernel_backends, make_input, rel_err

# (N, C, H, W, O, R, S, stride, padding, dilation, groups)
CASES = [
    (1, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1),
    (2, 4, 10, 7, 6, 3, 2, (2, 1), (1, 0), (1, 2), 2),
    (1, 6, 8, 8, 6, 3, 3, 1, "same", 1, 6),  # depthwise
    (3, 5, 7, 9, 7, 1, 1, 1, 0, 1, 1),  # 1x1
    (1, 3, 15, 14, 4, 7, 7, 2, 3, 1, 1),  # 7x7
    (1, 8, 6, 6, 4, 2, 2, 1, "same", 1, 2),  # even kernel: asymmetric 'same' padding
    (2, 2, 5, 5, 3, 3, 3, 3, 2, 2, 1),
]


def _conv_case(case, dtype, device, memory_format):
    n, c, h, w, o, r, s, stride, padding, dilation, groups = case
    x = make_input((n, c, h, w), dtype, device, memory_format=memory_format)
    weight = make_input((o, c // groups, r, s), dtype, device)
    bias = make_input((o,), dtype, device)
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_dense_conv_matches_reference(backend, device, dtype, memory_format):
    for case in CASES:
        x, weight, bias, kw = _conv_case(case, dtype, device, memory_format)
        out = torch_lowbit.ops.im2win_conv2d(x, weight, bias, backend=backend, **kw)
        ref = F.conv2d(x.cpu().float(), weight.cpu().float(), bias.cpu().float(), **kw)
        assert out.dtype == dtype and out.shape == ref.shape, case
        assert out.is_contiguous(memory_format=memory_format), case
        assert rel_err(out.cpu(), ref) < max(TOL[dtype], 1e-5) * (3 if dtype != torch.float32 else 1), case


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_lowbit_conv_matches_reference(backend, device, bits, dtype):
    for i, case in enumerate(CASES):
        x, weight, bias, kw = _conv_case(case, dtype, device, torch.channels_last if i % 2 else torch.contiguous_format)
        qw = torch_lowbit.quantize_weight(weight.cpu().float(), bits=bits, group_size=[32, -1][i % 2]).to(device)
        out = torch_lowbit.ops.im2win_conv2d(x, qw, bias, backend=backend, **kw)
        ref = torch_lowbit.ops.im2win_conv2d(x, qw, bias, backend="reference", **kw)
        assert rel_err(out.cpu(), ref.cpu()) < TOL[dtype] * (3 if dtype != torch.float32 else 1), case


def test_reference_equals_f_conv2d_with_string_padding():
    x, w = torch.randn(1, 4, 9, 9), torch.randn(4, 4, 4, 3)
    for padding in ("same", "valid"):
        out = torch_lowbit.ops.im2win_conv2d(x, w, padding=padding, dilation=(2, 1))
        assert rel_err(out, F.conv2d(x, w, padding=padding, dilation=(2, 1))) < 1e-5


def test_held_out_random_convs_fp32():
    gen = torch.Generator().manual_seed(99)
    for _ in range(5):
        groups = int(torch.randint(1, 4, (1,), generator=gen))
        c = groups * int(torch.randint(1, 5, (1,), generator=gen))
        o = groups * int(torch.randint(1, 7, (1,), generator=gen))
        r, s = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
        x = torch.randn(2, c, 12, 13)
        w = torch.randn(o, c // groups, r, s)
        kw = dict(stride=int(torch.randint(1, 3, (1,), generator=gen)), padding=int(torch.randint(0, 3, (1,), generator=gen)), groups=groups)
        assert rel_err(torch_lowbit.ops.im2win_conv2d(x, w, **kw), F.conv2d(x, w, **kw)) < 1e-4


# Images whose window buffer passes 1 MiB: the CPU's fused schedule (csrc/cpu/im2win_conv/
# im2win_driver.cpp), blocks of output rows stored straight into the NCHW / NHWC result.
LARGE_CASES = [
    (2, 24, 61, 59, 37, 3, 3, 1, 1, 1, 1),
    (1, 16, 130, 97, 50, 5, 3, 2, 2, (1, 2), 1),  # stride 2, dilated columns: one GEMM per run
]


@pytest.mark.parametrize("backend,device", [p for p in kernel_backends() if p.id.startswith("cpu")])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("bits", [None, 3], ids=["fp32", "3-bit"])
def test_large_images_match_reference(backend, device, memory_format, bits):
    for case in LARGE_CASES:
        x, weight, bias, kw = _conv_case(case, torch.float32, device, memory_format)
        w = weight if bits is None else torch_lowbit.quantize_weight(weight, bits=bits, group_size=32)
        out = torch_lowbit.ops.im2win_conv2d(x, w, bias, backend=backend, **kw)
        ref = F.conv2d(x, weight if bits is None else w.dequantize(), bias, **kw)
        assert out.is_contiguous(memory_format=memory_format), case
        assert rel_err(out, ref) < 1e-5, case
