"""The CPU LUT-GEMM with int8 activation-sum tables (the default SIMD path) against the exact
fp32 tables and the reference, on every SIMD path this CPU has.

The int8 tables round each chunk's signed sums to int8 with one scale per 64 (or 32)
activations: ~0.6-0.8% relative output error at K = 4096, which the issue bounds at 1% on
Gaussian and on outlier-heavy activations (0.5% of entries x30). Odd small shapes (a few
outputs, a few chunks) are held elementwise to the tables' worst-case rounding bound
(tests/error_bounds.py INT8_TABLE_BOUND: 8/254 of the summed terms' size): a norm-relative error over a
handful of outputs that cancel measured 2.7% on a correct kernel, while a wrong index or scale
breaks the elementwise bound by orders of magnitude.
"""
import pytest
import torch

import torch_lowbit
from conftest import CPU_ISAS, rel_err, within_int8_table_bound
from torch_lowbit.backends import native

SIMD_ISAS = [isa for isa in CPU_ISAS if isa != "portable"]
pytestmark = pytest.mark.skipif(not SIMD_ISAS, reason="int8 tables need AVX2")
CASES = [(1, 7, 33, 32), (3, 17, 100, 64), (17, 31, 300, 128), (64, 45, 257, 256), (5, 9, 70, -1), (2, 40, 96, -1)]


# On AVX-512 CPUs with VBMI and VNNI the int8 kernel is vpermb + vpdpbusd; its vpshufb sibling
# (the kernel of AVX-512 CPUs without them) is forced too, so both run wherever they can.
DEFAULT_LOOKUP = native.cpu_lut_lookup()
KERNELS = [(isa, DEFAULT_LOOKUP if isa in ("avx512", "amx") else "vpshufb") for isa in SIMD_ISAS]
if DEFAULT_LOOKUP == "vpermb" and "avx512" in SIMD_ISAS:
    KERNELS.append(("avx512", "vpshufb"))


@pytest.fixture(params=KERNELS, ids=[f"{isa}-{lookup}" for isa, lookup in KERNELS])
def isa(request):
    isa, lookup = request.param
    native.set_cpu_isa(isa)
    native.set_cpu_lut_lookup(lookup)
    before = native.cpu_lut_tables()
    try:
        yield isa
    finally:
        native.set_cpu_isa(torch_lowbit.build_info()["cpu_isa_best"])
        native.set_cpu_lut_lookup(DEFAULT_LOOKUP)
        native.set_cpu_lut_tables(before)


def _both(op, x, qw):
    native.set_cpu_lut_tables("int8")
    fast = op(x, qw, backend="cpu")
    native.set_cpu_lut_tables("exact")
    exact = op(x, qw, backend="cpu")
    native.set_cpu_lut_tables("int8")
    return fast, exact


@pytest.mark.parametrize("method", ["rtn", "bcq"])  # uniform grids (planes summed in int16) and free alphas
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("bits", range(1, 9))
def test_int8_tables_odd_shapes(isa, bits, dtype, method):
    if method == "bcq" and bits > 4:
        method = "mse"  # bcq's least squares is slow at many bits; mse is another uniform grid
    for m, n, k, gs in CASES:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=gs, method=method)
        x = torch.randn(m, k).to(dtype)
        fast, exact = _both(torch_lowbit.ops.lut_gemm, x, qw)
        assert fast.dtype == dtype and fast.shape == (m, n)
        assert not torch.isnan(fast).any()
        assert within_int8_table_bound(fast, exact, x, qw) <= 1, (m, n, k, gs)
        assert within_int8_table_bound(fast, x.float() @ qw.dequantize().T, x, qw) <= 1, (m, n, k, gs)


@pytest.mark.parametrize("outliers", [False, True], ids=["gaussian", "outliers"])
@pytest.mark.parametrize("bits,method", [(2, "rtn"), (3, "rtn"), (3, "bcq"), (4, "rtn")])
def test_int8_tables_error_within_one_percent(isa, bits, method, outliers):
    gen = torch.Generator().manual_seed(7)
    qw = torch_lowbit.quantize_weight(torch.randn(256, 4096, generator=gen), bits=bits, group_size=128, method=method)
    x = torch.randn(4, 4096, generator=gen)
    if outliers:  # 0.5% of the entries x30: BERT/LLM-style outlier channels
        idx = torch.randperm(4096, generator=gen)[:20]
        x[:, idx] *= 30
    fast, exact = _both(torch_lowbit.ops.lut_gemm, x, qw)
    assert rel_err(fast, exact) < 1e-2


def test_int8_tables_mixed_uniform_and_free_groups(isa):
    # A weight whose groups are partly uniform and partly not (one row's alphas perturbed): the
    # kernel decides per 16-row panel and group.
    qw = torch_lowbit.quantize_weight(torch.randn(40, 512), bits=3, group_size=64, scale_dtype=torch.float32)
    alpha = qw.alpha.clone()
    alpha[2, 3, 5] *= 1.3
    alpha[1, 0, 33] *= 0.7
    qw = torch_lowbit.QuantizedWeight(qw.planes, alpha, qw.offset, qw.shape, qw.group_size)
    x = torch.randn(3, 512)
    fast, exact = _both(torch_lowbit.ops.lut_gemm, x, qw)
    assert rel_err(fast, exact) < 1.5e-2
    assert rel_err(exact, x @ qw.dequantize().T) < 3e-5


@pytest.mark.parametrize("bits", [5, 6, 7, 8])
def test_int8_tables_largest_sums_do_not_wrap(isa, bits):
    # The worst case of the int16 block sums: every table entry looked up is +127 (constant
    # activations, all weight bits set), summed over a block's 8 lookups and the planes weighted
    # 2^b: 8 x 127 x (2^bits - 1) exceeds int16 from 6 bits, where a kernel must widen per plane.
    n, k, group = 48, 1024, 128
    planes = torch.full((bits, n // 16, k // 8, 16), 255, dtype=torch.uint8)  # every bit set
    alpha = (0.01 * 2.0 ** torch.arange(bits)).view(bits, 1, 1).expand(bits, k // group, n).half()  # uniform grid
    qw = torch_lowbit.QuantizedWeight(planes, alpha.contiguous(), torch.zeros(k // group, n).half(), (n, k), group)
    x = torch.ones(2, 1024)
    fast, exact = _both(torch_lowbit.ops.lut_gemm, x, qw)
    assert rel_err(exact, x @ qw.dequantize().T) < 3e-5
    assert within_int8_table_bound(fast, exact, x, qw) <= 1


@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("method", ["rtn", "bcq"])
def test_int8_tables_across_scale_chunks(isa, method, scale_dtype):
    # Each thread gathers the scales of a chunk of its panels (as many as fit 128 KiB) before
    # computing them: at K = 4096, g32 a chunk is 4-8 panels, so 1500 rows (a partial last panel)
    # cross many chunk boundaries, with one thread and with two.
    gen = torch.Generator().manual_seed(11)
    qw = torch_lowbit.quantize_weight(torch.randn(1500, 4096, generator=gen), bits=3, group_size=32, method=method, scale_dtype=scale_dtype)
    x = torch.randn(2, 4096, generator=gen)
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            fast, exact = _both(torch_lowbit.ops.lut_gemm, x, qw)
            assert within_int8_table_bound(fast, exact, x, qw) <= 1, t
            assert rel_err(exact, x @ qw.dequantize().T) < 3e-5
    finally:
        torch.set_num_threads(threads)


def test_default_linear_path_is_int8_and_near_exact(isa):
    assert native.cpu_lut_tables() == "int8"
    assert torch_lowbit.build_info()["cpu_lut_tables"] == "int8"
    qw = torch_lowbit.quantize_weight(torch.randn(300, 1024), bits=3, group_size=128)
    bias = torch.randn(300)
    x = torch.randn(2, 5, 1024)
    fast, exact = _both(lambda x, qw, backend: torch_lowbit.ops.linear(x, qw, bias, backend=backend), x, qw)
    assert fast.shape == (2, 5, 300)
    assert rel_err(fast, exact) < 1e-2
    assert rel_err(exact, x @ qw.dequantize().T + bias) < 3e-5


def test_lut_tables_switch_rejects_unknown_names():
    with pytest.raises(ValueError, match="tables"):
        native.set_cpu_lut_tables("int4")


def test_lut_lookup_switch():
    assert torch_lowbit.build_info()["cpu_lut_lookup"] == DEFAULT_LOOKUP
    with pytest.raises(ValueError, match="lookup"):
        native.set_cpu_lut_lookup("vpgather")
    if "vbmi" not in torch_lowbit.build_info()["cpu_features"] or "avx512vnni" not in torch_lowbit.build_info()["cpu_features"]:
        assert DEFAULT_LOOKUP == "vpshufb"
        with pytest.raises(ValueError, match="VBMI"):
            native.set_cpu_lut_lookup("vpermb")
