"""tiled_gemm, dense and low-bit, against the reference on every kernel backend."""
import pytest
import torch

import torch_lowbit
from conftest import TOL, kernel_backends, make_input, rel_err
from test_lut_gemm import DTYPES, check_lowbit

CASES = [(1, 1, 1), (3, 17, 33), (17, 31, 100), (64, 65, 300), (130, 70, 257)]


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_tiled_gemm_dense_matches_reference(backend, device, dtype):
    for m, n, k in CASES:
        x = make_input((m, k), dtype, device)
        w = make_input((n, k), dtype, device)
        out = torch_lowbit.ops.tiled_gemm(x, w, backend=backend)
        ref = torch_lowbit.ops.tiled_gemm(x, w, backend="reference")
        assert out.dtype == dtype
        assert rel_err(out.cpu(), ref.cpu()) < TOL[dtype], (m, n, k)


def test_tiled_gemm_dense_equals_f_linear_fp32():
    x, w = torch.randn(37, 513), torch.randn(129, 513)
    assert rel_err(torch_lowbit.ops.tiled_gemm(x, w), torch.nn.functional.linear(x, w)) < 1e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_tiled_gemm_dense_large_odd(backend, device):
    for m, n, k in [(7, 1000, 700), (100, 77, 1030)]:
        x, w = make_input((m, k), torch.float32, device), make_input((n, k), torch.float32, device)
        assert rel_err(torch_lowbit.ops.tiled_gemm(x, w, backend=backend).cpu(), (x @ w.T).cpu()) < 3e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_tiled_gemm_lowbit_matches_reference(backend, device, bits, dtype):
    check_lowbit(torch_lowbit.ops.tiled_gemm, backend, device, bits, dtype)
