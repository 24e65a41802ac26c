"""bcq_dequantize kernels against the plain-PyTorch reference: every CPU SIMD path this CPU runs,
Triton (interpreted on CPU without a GPU) and CUDA; odd shapes, every bit width, fp16 and fp32
scales (the output takes the scales' dtype), and an output large enough for the huge-page
allocation (csrc/cpu/huge_page_output.h). Outputs start NaN-poisoned (conftest), so an element a
kernel skips fails here."""
import pytest
import torch

import torch_lowbit
from torch_lowbit import dispatch, reference
from conftest import kernel_backends

BACKENDS = kernel_backends()
SHAPES = [(1, 8), (17, 37), (33, 200), (48, 1000)]


def _check(backend, device, qw):
    planes, alpha, offset, k, g = (t.to(device) if isinstance(t, torch.Tensor) else t for t in qw.op_args())
    out = dispatch.implementation("triton" if backend == "triton" else "native", "bcq_dequantize")(planes, alpha, offset, k, g)
    ref = reference.bcq_dequantize(*qw.op_args())
    assert out.dtype == qw.alpha.dtype and out.shape == ref.shape
    assert not torch.isnan(out).any(), "unwritten elements"
    # fp32 scales: the kernels sum the same terms in another order; fp16 output: one rounding
    tol = 1e-5 if out.dtype == torch.float32 else 1e-3
    assert torch.allclose(out.cpu().float(), ref.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_reference(backend, device, bits, shape):
    group = 32 if shape[1] < 128 else 128
    qw = torch_lowbit.quantize_weight(torch.randn(shape), bits=bits, group_size=group, method="bcq", scale_dtype=torch.float32)
    _check(backend, device, qw)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("method", ["mse", "bcq"])
def test_fp16_scales_give_fp16_output(backend, device, method):
    qw = torch_lowbit.quantize_weight(torch.randn(21, 96), bits=3, group_size=32, method=method)
    assert qw.alpha.dtype == torch.float16
    _check(backend, device, qw)


@pytest.mark.parametrize("backend,device", [p for p in BACKENDS if p.id.startswith("cpu")])
@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.float16])
def test_output_past_the_huge_page_threshold(backend, device, scale_dtype):
    # 1040 x 4101 fp32 = 17 MB, over the 8 MiB threshold and not a whole number of 2 MiB pages;
    # K = 4101 leaves a partial byte column and group at the end of each row.
    qw = torch_lowbit.quantize_weight(torch.randn(1040, 4101), bits=3, group_size=32, scale_dtype=scale_dtype)
    _check(backend, device, qw)
    w = qw.dequantize()
    del w  # freed through the huge-page allocation's own deleter
    assert torch.equal(qw.dequantize(), qw.dequantize())
