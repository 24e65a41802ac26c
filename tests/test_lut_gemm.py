"""lut_gemm (and the low-bit linear ops around it) against the reference, on every kernel backend.
The low-bit tiled_gemm cases are in test_tiled_gemm.py, the int8 tables in test_lut_gemm_int8.py."""
import pytest
import torch

import torch_lowbit
from conftest import TOL, kernel_backends, make_input, rel_err

# (M, N, K, group_size): odd N, K not a multiple of 8/32/the group, m in 1, 3, 17, 64.
# (N = 1 with M = 1 is left out: a single output that cancels makes the relative error meaningless.)
CASES = [(1, 7, 33, 32), (3, 17, 100, 64), (17, 31, 300, 128), (64, 45, 257, 256), (5, 9, 70, -1)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def check_lowbit(op, backend, device, bits, dtype, scale_dtype=torch.float16):
    for m, n, k, gs in CASES:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=gs, scale_dtype=scale_dtype).to(device)
        x = make_input((m, k), dtype, device)
        out = op(x, qw, backend=backend)
        ref = op(x, qw, backend="reference")
        assert out.dtype == dtype and out.device.type == torch.device(device).type
        err = rel_err(out.cpu(), ref.cpu())
        assert err < TOL[dtype], (m, n, k, gs, err)


@pytest.mark.parametrize("backend,device", kernel_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", range(1, 9))
def test_lut_gemm_matches_reference(backend, device, bits, dtype):
    check_lowbit(torch_lowbit.ops.lut_gemm, backend, device, bits, dtype)


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_fp32_scales_and_leading_dims(backend, device):
    qw = torch_lowbit.quantize_weight(torch.randn(19, 130), bits=3, group_size=32, scale_dtype=torch.float32).to(device)
    x = make_input((2, 3, 130), torch.float32, device)
    for op in (torch_lowbit.ops.lut_gemm, torch_lowbit.ops.tiled_gemm):
        out = op(x, qw, backend=backend)
        assert out.shape == (2, 3, 19)
        assert rel_err(out.cpu(), (x.cpu() @ qw.cpu().dequantize().T)) < 1e-5


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_held_out_random_shapes_fp32(backend, device):
    gen = torch.Generator().manual_seed(1234)
    for _ in range(4):
        m, n, k = (int(v) for v in torch.randint(1, 80, (3,), generator=gen))
        k += 200
        bits = int(torch.randint(1, 9, (1,), generator=gen))
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=64).to(device)
        x = make_input((m, k), torch.float32, device)
        ref = x.cpu() @ qw.cpu().dequantize().T
        for op in (torch_lowbit.ops.lut_gemm, torch_lowbit.ops.tiled_gemm, torch_lowbit.ops.linear):
            assert rel_err(op(x, qw, backend=backend).cpu(), ref) < 1e-4


def test_empty_batch():
    qw = torch_lowbit.quantize_weight(torch.randn(8, 64), bits=3, group_size=32)
    assert torch_lowbit.ops.lut_gemm(torch.randn(0, 64), qw).shape == (0, 8)
    assert torch_lowbit.ops.tiled_gemm(torch.randn(0, 64), qw).shape == (0, 8)


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_large_odd_shapes_cover_all_tiles(backend, device):
    # N spans several 256-column tiles with a ragged last panel; K spans several 256-slices.
    for m, n, k, gs in [(1, 1000, 700, 128), (13, 529, 1030, 64), (70, 300, 520, -1)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=3, group_size=gs).to(device)
        x = make_input((m, k), torch.float32, device)
        ref = x.cpu() @ qw.cpu().dequantize().T
        for op in (torch_lowbit.ops.lut_gemm, torch_lowbit.ops.tiled_gemm):
            assert rel_err(op(x, qw, backend=backend).cpu(), ref) < 3e-5, (op.__name__, m, n, k)


def test_set_cpu_isa_rejects_unknown_names():
    from torch_lowbit import _C

    with pytest.raises(ValueError, match="isa"):
        _C.set_cpu_isa("sse9")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_lut_gemm_every_row_variant_and_split_is_deterministic(dtype):
    # m = 1, 4, 5 and 32 hit the three compile-time row variants (1, 4, 16 rows a block; 32 rows
    # take two blocks); K = 4096 with few outputs makes the plan split K across blocks.
    for m, n, gs in [(1, 300, 128), (4, 77, 32), (5, 130, -1), (32, 200, 64)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, 4096), bits=3, group_size=gs).to("cuda")
        x = make_input((m, 4096), dtype, "cuda")
        out = torch_lowbit.ops.lut_gemm(x, qw, backend="cuda")
        ref = torch_lowbit.ops.lut_gemm(x, qw, backend="reference")
        assert rel_err(out.cpu(), ref.cpu()) < TOL[dtype], (m, n, gs)
        assert torch.equal(out, torch_lowbit.ops.lut_gemm(x, qw, backend="cuda")), "split-K must be deterministic"


@pytest.mark.parametrize("backend,device", kernel_backends())
def test_bf16_large_odd_shapes(backend, device):
    # bf16 activations take the AMX tiled kernel where the CPU has it (cpu-amx): row blocks of
    # 32 with a ragged last one, 64-column tiles with a ragged last strip, K padded to the group.
    for m, n, k, gs in [(70, 300, 520, -1), (33, 1000, 700, 128), (1, 17, 40, 32), (40, 64, 256, 64)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=3, group_size=gs).to(device)
        x = make_input((m, k), torch.bfloat16, device)
        ref = x.float().cpu() @ qw.cpu().dequantize().T
        for op in (torch_lowbit.ops.tiled_gemm, torch_lowbit.ops.linear):
            assert rel_err(op(x, qw, backend=backend).cpu(), ref) < TOL[torch.bfloat16], (op.__name__, m, n, k)
