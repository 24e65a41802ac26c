"""The Triton one-row GEMV (triton_kernels/bcq_gemv.py, what lut_gemm runs for m = 1 on the Triton
backend) against the reference: every bit width, odd row counts (partial panels), K not a multiple
of the group, per-channel groups, split-K, every activation dtype and both scale dtypes."""
import pytest
import torch

import torch_lowbit
from conftest import TOL, make_input, rel_err
from torch_lowbit import dispatch

pytestmark = pytest.mark.skipif(not dispatch.triton_available(), reason="needs triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def gemv(x, qw, block_n, block_k, split_k, num_warps=4):
    from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv

    planes, alpha, offset, k, g = qw.op_args()
    return bcq_gemv(x, planes, alpha, offset, k, g, block_n, block_k, split_k, num_warps)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_gemv_op_matches_reference(bits, dtype):
    for n, k, gs in [(7, 33, 32), (45, 257, 256), (130, 520, 128), (9, 70, -1)]:
        qw = torch_lowbit.quantize_weight(torch.randn(n, k), bits=bits, group_size=gs).to(DEVICE)
        x = make_input((1, k), dtype, DEVICE)
        out = torch_lowbit.ops.lut_gemm(x, qw, backend="triton")
        ref = torch_lowbit.ops.lut_gemm(x, qw, backend="reference")
        assert out.shape == (1, n) and out.dtype == dtype
        assert rel_err(out.cpu(), ref.cpu()) < TOL[dtype], (bits, n, k, gs)


@pytest.mark.parametrize("block_n,block_k,split_k", [(16, 32, 1), (32, 64, 3), (64, 128, 2), (256, 32, 16), (128, 128, 1)])
def test_gemv_tiles_and_splits(block_n, block_k, split_k):
    gen = torch.Generator().manual_seed(block_n * 31 + split_k)
    for bits in (2, 3, 5):
        qw = torch_lowbit.quantize_weight(torch.randn(83, 700, generator=gen), bits=bits, group_size=128,
                                          scale_dtype=torch.float32).to(DEVICE)
        x = torch.randn(1, 700, generator=gen).to(DEVICE)
        out = gemv(x, qw, block_n, block_k, split_k)
        assert rel_err(out.cpu(), x.cpu() @ qw.cpu().dequantize().T) < 1e-5, (bits, block_n, block_k, split_k)
        assert torch.equal(out, gemv(x, qw, block_n, block_k, split_k))  # deterministic split-K


def test_gemv_refuses_tiles_that_straddle_groups():
    from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv_launch

    with pytest.raises(ValueError, match="block_k"):
        bcq_gemv_launch(64, 256, 3, 256, 64, torch.float16, torch.float16, block_n=64, block_k=128)
    with pytest.raises(ValueError, match="block_n"):
        bcq_gemv_launch(64, 256, 3, 256, 64, torch.float16, torch.float16, block_n=24, block_k=64)


def test_gemv_config_loads_whole_16_byte_words():
    from torch_lowbit.backends.triton.tile_model import GPU_SPECS, gemv_config

    for spec in GPU_SPECS.values():
        for n, k, g in [(28672, 7168, 128), (4096, 4096, 64), (4096, 14336, 256), (11008, 4096, 32), (8192, 8192, 8192)]:
            c = gemv_config(n, k, spec, g)
            assert g % c.block_k == 0 and c.block_n % 16 == 0
            assert c.block_n * c.block_k // 8 >= 16 * 32 * c.num_warps, (spec.name, n, k, g, c)
            assert 1 <= c.split_k <= 16 and c.split_k * c.block_k <= max(k, c.block_k)
