"""The CPU int8-activation GEMM (csrc/cpu/int8_gemm/): what bcq_linear runs for many rows of a
uniform-grid weight (rtn / mse) where activations may be int8, on every SIMD path this CPU has.

Two checks. Against an emulation of its arithmetic in plain PyTorch — x rounded to int8 per row
and block of 32 (scale = max |x| / 127, round half to even), times the dequantized weight — it
agrees to fp32 rounding, so a wrong code, scale, block or row shows at once. Against the exact
product it stays within the int8 activation error: ~0.5% on Gaussian activations, ~1.2% with
0.5% of the channels x30 (llama.cpp's Q8_0 activations, the same blocks, cost the same).
"""
import pytest
import torch

import torch_lowbit
from conftest import CPU_ISAS, rel_err
from torch_lowbit.backends import native

SIMD_ISAS = [isa for isa in CPU_ISAS if isa != "portable"]
pytestmark = pytest.mark.skipif(not SIMD_ISAS, reason="the int8 GEMM needs AVX2")
BLOCK = 32
# (m, n, k, group_size): odd row counts (every tail of the row blocks), N not a multiple of the
# 16/32-row strips, K not a multiple of 32 (padded), per-channel groups.
CASES = [(32, 7, 33, 32), (37, 45, 257, 64), (33, 100, 300, 128), (45, 33, 512, 256), (40, 17, 70, -1), (70, 130, 96, -1)]


@pytest.fixture(params=SIMD_ISAS)
def isa(request):
    native.set_cpu_isa(request.param)
    tables = native.cpu_lut_tables()
    native.set_cpu_lut_tables("int8")
    try:
        yield request.param
    finally:
        native.set_cpu_isa(torch_lowbit.build_info()["cpu_isa_best"])
        native.set_cpu_lut_tables(tables)


def is_uniform(qw) -> bool:
    """alpha_b == alpha_0 * 2^b exactly, as the kernel checks. (mse's fp16 alphas miss it in a
    rare group whose alpha_0 is subnormal: each alpha_b is rounded on its own.)"""
    a = qw.alpha.float()
    return all(torch.equal(a[b], a[0] * 2**b) for b in range(qw.bits))


def kernel(m: int, qw, bf16: bool = False, uniform: bool | None = None) -> str:
    n, k = qw.shape
    return native.cpu_linear_kernel(m, qw.bits, n, k, bf16, is_uniform(qw) if uniform is None else uniform)


def runs_int8(bits: int, isa: str) -> bool:
    # kernel_selector.h: vpdpbusd (AVX-512 VNNI) at every width; AVX2 from 3 bits (2-bit weights
    # keep the LUT there) to 7 (vpmaddubsw's int16 pair sums).
    if isa != "avx2" and "avx512vnni" in torch_lowbit.build_info()["cpu_features"]:
        return True
    return 3 <= bits <= 7


def int8_activations(x: torch.Tensor) -> torch.Tensor:
    """x as the kernel sees it: per row and block of 32 columns, int8 with scale max |x| / 127."""
    m, k = x.shape
    kp = -(-k // BLOCK) * BLOCK
    xb = torch.nn.functional.pad(x.float(), (0, kp - k)).view(m, kp // BLOCK, BLOCK)
    amax = xb.abs().amax(-1, keepdim=True)
    # 127 / amax as one IEEE division, as the kernel computes it (torch's scalar / tensor is
    # 127 * reciprocal(amax), which rounds differently and moves ties of x * inv)
    inv = torch.where(amax > 0, torch.full_like(amax, 127.0) / amax, torch.zeros_like(amax))
    q = torch.round(xb * inv)
    return (q * (amax / 127)).view(m, kp)[:, :k]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("bits", range(1, 9))
def test_matches_the_int8_emulation(isa, bits, dtype):
    gen = torch.Generator().manual_seed(bits)
    ran = 0
    for m, n, k, gs in CASES:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k, generator=gen), bits=bits, group_size=gs, method="mse")
        x = torch.randn(m, k, generator=gen).to(dtype)
        expected = runs_int8(bits, isa) and is_uniform(qw) and not (dtype == torch.bfloat16 and isa == "amx")
        assert (kernel(m, qw, dtype == torch.bfloat16) == "int8_gemm") == expected
        ran += expected
        y = torch_lowbit.ops.linear(x, qw, backend="cpu")
        assert y.dtype == dtype and y.shape == (m, n) and not torch.isnan(y).any()
        emulated = int8_activations(x) @ qw.dequantize().T
        if expected:  # the int8 product itself, to fp32 rounding (and the output dtype's)
            tol = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
            scale = emulated.abs().amax(-1, keepdim=True) + 1e-6
            assert ((y.float() - emulated).abs() / scale).max() < tol, (m, n, k, gs)
    assert ran >= len(CASES) - 2 or not runs_int8(bits, isa) or isa == "amx" and dtype == torch.bfloat16


@pytest.mark.parametrize("outliers", [False, True], ids=["gaussian", "outliers"])
@pytest.mark.parametrize("bits,method", [(2, "rtn"), (3, "mse"), (4, "rtn")])
def test_error_against_the_exact_product(isa, bits, method, outliers):
    if not runs_int8(bits, isa):
        pytest.skip("this path keeps these weights on the LUT")
    gen = torch.Generator().manual_seed(7)
    qw = torch_lowbit.quantize_weight(torch.randn(256, 4096, generator=gen), bits=bits, group_size=128, method=method)
    x = torch.randn(64, 4096, generator=gen)
    if outliers:  # 0.5% of the channels x30: BERT/LLM-style outlier channels
        x[:, torch.randperm(4096, generator=gen)[:20]] *= 30
    assert kernel(64, qw) == "int8_gemm"
    err = rel_err(torch_lowbit.ops.linear(x, qw, backend="cpu"), x @ qw.dequantize().T)
    assert err < (1.5e-2 if outliers else 8e-3), err


def test_exact_tables_and_free_grids_keep_fp32(isa):
    qw = torch_lowbit.quantize_weight(torch.randn(64, 256), bits=3, group_size=64, method="mse")
    x = torch.randn(48, 256)
    native.set_cpu_lut_tables("exact")
    assert kernel(48, qw) != "int8_gemm"
    assert rel_err(torch_lowbit.ops.linear(x, qw, backend="cpu"), x @ qw.dequantize().T) < 3e-5
    native.set_cpu_lut_tables("int8")
    assert is_uniform(qw) and kernel(48, qw) == "int8_gemm" and kernel(48, qw, uniform=False) != "int8_gemm"
    assert kernel(8, qw) != "int8_gemm"  # few rows: the LUT
    # One perturbed alpha makes the grid non-uniform: the op sees it and takes another kernel,
    # exact to fp32 where the int8 GEMM would be off by its ~0.5%.
    alpha = qw.alpha.clone()
    alpha[1, 2, 5] *= 1.3
    free = torch_lowbit.QuantizedWeight(qw.planes, alpha, qw.offset, qw.shape, qw.group_size)
    native.set_cpu_lut_tables("exact")
    exact = torch_lowbit.ops.linear(x, free, backend="cpu")
    native.set_cpu_lut_tables("int8")
    out = torch_lowbit.ops.linear(x, free, backend="cpu")
    assert rel_err(out, x @ free.dequantize().T) < 2e-2 and rel_err(exact, x @ free.dequantize().T) < 3e-5


def test_non_finite_activations_reach_their_rows_only(isa):
    qw = torch_lowbit.quantize_weight(torch.randn(40, 320), bits=3, group_size=64)
    x = torch.randn(36, 320)
    x[3, 100] = float("nan")
    x[7, 5] = float("inf")
    y = torch_lowbit.ops.linear(x, qw, backend="cpu")
    assert torch.isnan(y[3]).all() and not torch.isfinite(y[7]).any()
    rest = [r for r in range(36) if r not in (3, 7)]
    assert torch.isfinite(y[rest]).all()


def test_largest_codes_and_activations_do_not_wrap(isa):
    # Every bit set (the largest code) times +127 activations, at the widest width each path
    # takes: the int16 pair sums of AVX2 (7 bits: 2 x 127 x 127) and int32 of vpdpbusd.
    for bits in (7, 8):
        if not runs_int8(bits, isa):
            continue
        n, k, group = 48, 1024, 128
        planes = torch.full((bits, n // 16, k // 8, 16), 255, dtype=torch.uint8)
        alpha = (0.01 * 2.0 ** torch.arange(bits)).view(bits, 1, 1).expand(bits, k // group, n).half()
        qw = torch_lowbit.QuantizedWeight(planes, alpha.contiguous(), torch.zeros(k // group, n).half(), (n, k), group)
        x = torch.ones(33, k)
        assert kernel(33, qw) == "int8_gemm"
        assert rel_err(torch_lowbit.ops.linear(x, qw, backend="cpu"), x @ qw.dequantize().T) < 1e-5
