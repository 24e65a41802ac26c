"""Shared test setup. Without a GPU, Triton kernels run under Triton's interpreter on CPU
tensors: TRITON_INTERPRET must be set before triton is imported, so it is set here."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TORCH_LOWBIT_POISON", "1")  # outputs start as NaN: unwritten elements show

import torch_lowbit  # noqa: E402
from torch_lowbit import dispatch  # noqa: E402
from torch_lowbit.backends import native  # noqa: E402
from error_bounds import INT8_TABLE_BOUND, abs_weight  # noqa: E402

# Relative error bounds against the reference (docs/DESIGN.md, Testing method). fp32 allows 3e-5:
# kernels and reference sum in different orders, and a single output (N = M = 1) with
# cancellation between the alpha terms and the offset shows ~1e-5 on its own.
TOL = {torch.float32: 3e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert not torch.isnan(out).any(), "output has NaN (unwritten elements or a broken kernel)"
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12)).item()


def bcq_magnitude(x: torch.Tensor, qw) -> torch.Tensor:
    """sum_k |x[m, k]| (sum_b |alpha_b| + |offset|)[n, k]: the size of the terms an output sums,
    what its rounding error scales with (a norm-relative error of a few outputs that cancel
    says nothing)."""
    from torch_lowbit import reference

    planes, alpha, offset = abs_weight(qw.planes, qw.alpha.float(), qw.offset.float())
    w = reference.bcq_dequantize(planes, alpha, offset, qw.in_features, qw.effective_group_size)
    return x.float().abs().reshape(-1, qw.in_features) @ w.t()


def within_int8_table_bound(out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, qw, slack: float = 1e-3) -> float:
    """max |out - ref| / bound, elementwise (<= 1 passes); the bound adds out's own rounding."""
    mag = bcq_magnitude(x, qw).reshape(out.shape)
    eps = torch.finfo(out.dtype).eps
    bound = (INT8_TABLE_BOUND + slack) * mag + 2 * eps * ref.float().abs() + 1e-30
    return ((out.float() - ref.float()).abs() / bound).max().item()


class CpuBackend(str):
    """backend="cpu" with the SIMD path (ISA) the CPU kernels are forced to for the test."""

    def __new__(cls, isa):
        obj = super().__new__(cls, "cpu")
        obj.isa = isa
        return obj


CPU_ISAS = list(reversed(native.runnable_cpu_isas()))  # best path first


def kernel_backends():
    """(backend, device) pairs to test: the CPU kernels once per SIMD path this CPU supports,
    Triton, and CUDA (CUDA-only ones carry the `cuda` mark)."""
    has_gpu = torch.cuda.is_available()
    cuda_mark = pytest.mark.skipif(not has_gpu, reason="needs a CUDA GPU")
    params = [pytest.param(CpuBackend(isa), "cpu", id=f"cpu-{isa}") for isa in CPU_ISAS]
    if dispatch.triton_available():
        # on a GPU machine the Triton kernels compile for real and belong to `pytest -m cuda`
        marks = [pytest.mark.cuda] if has_gpu else []
        params.append(pytest.param("triton", "cuda" if has_gpu else "cpu", id="triton", marks=marks))
    params.append(pytest.param("cuda", "cuda", id="cuda", marks=[pytest.mark.cuda, cuda_mark]))
    return params


def make_input(shape, dtype, device, seed=None, memory_format=None):
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    x = torch.randn(shape, generator=gen).to(dtype)
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    return x.to(device)


@pytest.fixture(autouse=True)
def _forced_cpu_isa(request):
    # The kernel-against-reference tests hold the CPU kernels to fp32/fp16/bf16 tolerances, so
    # they run the exact fp32 LUT tables; the default int8 tables have their own tests
    # (test_lut_gemm_int8.py) against the exact ones.
    backend = getattr(request.node, "callspec", None) and request.node.callspec.params.get("backend")
    if not isinstance(backend, CpuBackend):
        yield
        return
    native.set_cpu_isa(backend.isa)
    tables = native.cpu_lut_tables()
    native.set_cpu_lut_tables("exact")
    try:
        yield
    finally:
        native.set_cpu_isa(torch_lowbit.build_info()["cpu_isa_best"])
        native.set_cpu_lut_tables(tables)


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    # Fresh random inputs per test, but reproducible from the test id when a failure is rerun.
    torch.manual_seed(hash(request.node.nodeid) % (2**31))
