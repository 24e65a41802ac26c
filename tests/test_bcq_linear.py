"""bcq_linear (ops.linear) past the LUT range on the CPU: the weight expanded block by block and
multiplied by ATen's dense GEMM (csrc/cpu/bcq_linear/dense_gemm_bcq.cpp), against the reference
on every CPU ISA path (the expansion has an AVX2 and a portable version)."""
import pytest
import torch

import torch_lowbit
from conftest import CPU_ISAS, TOL, CpuBackend, kernel_backends, make_input, rel_err

CPU_BACKENDS = [p for p in kernel_backends() if isinstance(p.values[0], CpuBackend)]


@pytest.fixture(autouse=True)
def _sgemm_route_reachable():
    # On AVX-512 CPUs with VBMI/VNNI the vpermb int8 kernel takes 2-4 bit layers at any row count
    # (kernel_selector.h), so these tests of the many-row route run with the vpshufb kernel's
    # rules; test_vpermb_route_keeps_lut_at_any_row_count covers the vpermb rule. The int8 GEMM,
    # which would take the uniform-grid weights here, is off (tests/test_int8_gemm.py is its own).
    from torch_lowbit.backends import native

    before = native.cpu_lut_lookup()
    native.set_cpu_lut_lookup("vpshufb")
    native.set_cpu_int8_gemm(False)
    try:
        yield
    finally:
        native.set_cpu_lut_lookup(before)
        native.set_cpu_int8_gemm(True)


@pytest.mark.parametrize("backend,device", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("bits", range(1, 9))
def test_many_rows_match_reference(backend, device, bits, dtype):
    # rows x bits > 256: past the LUT range of every ISA; odd N (a partial last panel), odd K.
    m = 260 // bits + 1
    for n, k, gs, scale_dtype in [(37, 300, 32, torch.float16), (130, 257, 128, torch.float32), (19, 100, -1, torch.float16)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=gs, method="bcq" if bits <= 4 else "rtn",
                                          scale_dtype=scale_dtype)
        x = make_input((m, k), dtype, device)
        bias = torch.randn(n, dtype=dtype)
        out = torch_lowbit.ops.linear(x, qw, bias, backend=backend)
        ref = torch_lowbit.ops.linear(x, qw, bias, backend="reference")
        assert out.dtype == dtype
        assert rel_err(out, ref) < TOL[dtype], (n, k, gs)


@pytest.mark.parametrize("backend,device", CPU_BACKENDS)
def test_weights_past_one_scratch_block(backend, device):
    # A 16 MB expansion block holds 1008 rows of K = 4100: three blocks, the last one a partial panel.
    qw = torch_lowbit.quantize_weight(torch.randn(2100, 4100), bits=3, group_size=64)
    x = make_input((100, 4100), torch.float32, device)
    out = torch_lowbit.ops.linear(x, qw, backend=backend)
    assert rel_err(out, x @ qw.dequantize().T) < 1e-5


def test_threads_calling_at_once_get_their_own_scratch():
    from concurrent.futures import ThreadPoolExecutor

    qws = [torch_lowbit.quantize_weight(torch.randn(n, 512), bits=3, group_size=128) for n in (96, 200, 333)]
    xs = [torch.randn(300, 512) for _ in qws]
    expected = [x @ qw.dequantize().T for x, qw in zip(xs, qws)]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            outs = list(pool.map(lambda i: torch_lowbit.ops.linear(xs[i], qws[i]), range(3)))
            for out, ref in zip(outs, expected):
                assert rel_err(out, ref) < 1e-5


@pytest.mark.parametrize("isa", [i for i in CPU_ISAS if i != "portable"])
def test_int8_route_keeps_lut_for_2_and_large_3_bit_weights(isa):
    # kernel_selector.h: with int8 tables (the AVX2 kernel, or AVX-512's vpshufb one) and fp32
    # activations, 2-bit layers and 3-bit ones of >= 2^22 weights stay on the LUT kernel at any
    # row count (2-bit ones of any size on AVX2); the rest go to the expand + sgemm route.
    from torch_lowbit.backends import native

    tables, old_isa = native.cpu_lut_tables(), native.cpu_isa()
    native.set_cpu_lut_tables("int8")
    native.set_cpu_isa(isa)
    try:
        x = torch.randn(300, 4096)
        # Small 2-bit layers stay on the LUT only on AVX2 (AVX-512's sgemm beats it there).
        for bits, n, lut in [(2, 40, isa == "avx2"), (2, 1024, True), (3, 1024, True), (3, 40, False), (4, 1024, False)]:
            qw = torch_lowbit.quantize_weight(torch.randn(n, 4096), bits=bits, group_size=128)
            out = torch_lowbit.ops.linear(x, qw)
            if lut:
                assert torch.equal(out, torch_lowbit.ops.lut_gemm(x, qw)), (bits, n)
            else:
                assert rel_err(out, x @ qw.dequantize().T) < 1e-5, (bits, n)
    finally:
        native.set_cpu_lut_tables(tables)
        native.set_cpu_isa(old_isa)


@pytest.mark.skipif(torch_lowbit.build_info()["cpu_lut_lookup"] != "vpermb", reason="needs AVX-512 VBMI/VNNI")
def test_vpermb_route_keeps_lut_at_any_row_count():
    # kernel_selector.h: the vpermb + vpdpbusd kernel keeps 2-4 bit layers on the LUT at any row
    # count and size; 5-8 bits leave it past rows x bits = 256.
    from torch_lowbit.backends import native

    native.set_cpu_lut_lookup("vpermb")
    native.set_cpu_lut_tables("int8")
    x = torch.randn(300, 1024)
    for bits, lut in [(2, True), (3, True), (4, True), (5, False), (8, False)]:
        qw = torch_lowbit.quantize_weight(torch.randn(40, 1024), bits=bits, group_size=128)
        out = torch_lowbit.ops.linear(x, qw)
        if lut:
            assert torch.equal(out, torch_lowbit.ops.lut_gemm(x, qw)), bits
        else:
            assert rel_err(out, x @ qw.dequantize().T) < 1e-5, bits
