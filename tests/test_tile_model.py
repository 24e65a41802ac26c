"""The Triton tile-size model (torch_lowbit/backends/triton/tile_model.py) and the kernel features it drives:
split-K (deterministic), group-aligned and unaligned K-steps, torch.compile over the Triton ops."""
import math

import pytest
import torch

import torch_lowbit
from conftest import make_input, rel_err
from torch_lowbit import dispatch
from torch_lowbit.backends.triton.tile_model import (GPU_SPECS, TileConfig, best_config, feasible, predict_ms,
                                     rank_configs, shared_bytes, spec_for_device)

GEMV_SHAPES = [(28672, 7168), (4096, 4096), (14336, 4096), (4096, 14336), (8192, 8192)]
needs_triton = pytest.mark.skipif(not dispatch.triton_available(), reason="needs triton")


@pytest.mark.parametrize("gpu", sorted(GPU_SPECS))
def test_chosen_configs_fit_the_gpu(gpu):
    spec = GPU_SPECS[gpu]
    for n, k in GEMV_SHAPES:
        for m in (1, 4, 16, 32, 256):
            cfg = best_config(m, n, k, spec, weight_bits=3, group_size=128)
            assert feasible(cfg, spec, 2, 3, 128)
            assert shared_bytes(cfg, 2, 3) <= spec.smem_per_block
            assert 128 % cfg.block_k == 0 or cfg.block_k % 128 == 0
            assert cfg.block_m <= 2 * max(m, 16)
    for size in (1024, 2048, 4096, 8192):
        cfg = best_config(size, size, size, spec)
        assert cfg.split_k == 1 and shared_bytes(cfg, 2, 16) <= spec.smem_per_block


def test_large_gemm_gets_large_tiles_and_sane_throughput():
    spec = GPU_SPECS["H100"]
    cfg = best_config(4096, 4096, 4096, spec)
    assert cfg.block_m >= 64 and cfg.block_n >= 64
    tflops = 2 * 4096**3 / (predict_ms(4096, 4096, 4096, cfg, spec) * 1e-3) / 1e12
    assert 0.4 * spec.tensor_tflops < tflops <= spec.tensor_tflops


def test_gemv_predictions_respect_the_dram_floor_and_split_small_n():
    spec = GPU_SPECS["H100"]
    for n, k in GEMV_SHAPES:
        cfg = best_config(1, n, k, spec, weight_bits=3, group_size=128)
        floor_ms = n * k * 3 / 8 / (spec.dram_gbs * 1e9) * 1e3
        assert predict_ms(1, n, k, cfg, spec, 2, 3, 128) >= floor_ms
    # 4096 outputs are 32 tiles of 128 for 132 SMs: the model must split K to fill the GPU.
    assert best_config(1, 4096, 4096, spec, weight_bits=3, group_size=128).split_k > 1


def test_prediction_grows_with_k_and_rejects_infeasible_configs():
    spec = GPU_SPECS["A100"]
    cfg = TileConfig(128, 128, 64, 8, 3)
    times = [predict_ms(512, 512, k, cfg, spec) for k in (256, 1024, 4096, 16384)]
    assert times == sorted(times) and times[0] < times[-1]
    huge = TileConfig(256, 256, 128, 4, 5)  # 5 x 64 KiB of shared memory, 512 accumulators a thread
    assert not feasible(huge, spec) and math.isinf(predict_ms(512, 512, 512, huge, spec))
    ranked = rank_configs(64, 512, 512, spec)
    assert [t for t, _ in ranked] == sorted(t for t, _ in ranked)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="m: expected a positive int"):
        best_config(0, 16, 16, GPU_SPECS["H100"])
    with pytest.raises(ValueError, match="k: expected a positive int"):
        best_config(1, 16, -3, GPU_SPECS["H100"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU default")
def test_spec_without_a_gpu_is_the_h100():
    assert spec_for_device() == GPU_SPECS["H100"]


def _interpreted():
    return "cuda" if torch.cuda.is_available() else "cpu"


@needs_triton
@pytest.mark.parametrize("split_k", [1, 3, 4])
@pytest.mark.parametrize("block_k,group_size", [(32, 64), (64, 32), (32, -1)])
def test_split_k_and_group_alignment_match_the_reference(split_k, block_k, group_size):
    from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm

    device = _interpreted()
    qw = torch_lowbit.quantize_weight(torch.randn(37, 300), bits=3, group_size=group_size).to(device)
    x = make_input((5, 300), torch.float32, device)
    planes, alpha, offset, k, g = qw.op_args()
    out = bcq_gemm(x, planes, alpha, offset, k, g, block_m=16, block_n=32, block_k=block_k, split_k=split_k)
    ref = x.cpu() @ qw.cpu().dequantize().T
    assert rel_err(out.cpu(), ref) < 3e-5
    again = bcq_gemm(x, planes, alpha, offset, k, g, block_m=16, block_n=32, block_k=block_k, split_k=split_k)
    assert torch.equal(out, again), "split-K must be deterministic"


@needs_triton
def test_torch_compile_traces_the_triton_ops():
    device = _interpreted()
    qw = torch_lowbit.quantize_weight(torch.randn(24, 64), bits=3, group_size=32).to(device)
    w = torch.randn(10, 24, device=device)

    def f(x):
        return torch_lowbit.ops.tiled_gemm(torch_lowbit.ops.lut_gemm(x, qw, backend="triton"), w, backend="triton").relu()

    x = make_input((3, 64), torch.float32, device)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    assert rel_err(compiled(x).cpu(), f(x).cpu()) < 1e-6


def test_cuda_family_follows_measured_tables(monkeypatch):
    assert isinstance(dispatch.measured_gpu_policies(), dict)  # the shipped files parse
    table = {"Fake GPU": {"lut_gemm": [[4, "native"], [32, "triton"]]}}
    monkeypatch.setattr(dispatch, "measured_gpu_policies", lambda: table)
    monkeypatch.setattr(dispatch, "_gpu_name", lambda device: "Fake GPU")
    cuda = torch.device("cuda")
    assert dispatch.cuda_family("lut_gemm", 1, cuda, triton_ok=True) == "cuda"  # tables say "native" for CUDA C++
    assert dispatch.cuda_family("lut_gemm", 16, cuda, triton_ok=True) == "triton"
    assert dispatch.cuda_family("lut_gemm", 64, cuda, triton_ok=True) == "triton"  # unmeasured: the default
    assert dispatch.cuda_family("tiled_gemm", 1, cuda, triton_ok=True) == "triton"
    assert dispatch.cuda_family("lut_gemm", 16, cuda, triton_ok=False) == "cuda"  # no Triton installed


def test_tile_forest_fits_a_sweep_and_corrects_the_ranking(tmp_path, monkeypatch):
    # A synthetic "GPU" whose real times are the analytic model's times, 3x slower for the warp
    # count the analytic model favours: the forest fitted to its sweep must learn to avoid it on
    # a shape it never saw, and the saved file must be what rank_configs picks up for that GPU.
    import math

    import numpy as np

    from torch_lowbit.backends.triton import tile_forest

    spec = GPU_SPECS["A100"]
    monkeypatch.setattr(tile_forest, "_loaded", {spec.name: None})
    favoured = rank_configs(128, 8192, 8192, spec, 2, 3, 128)[0][1].num_warps

    def real_ms(m, n, k, cfg):
        return predict_ms(m, n, k, cfg, spec, 2, 3, 128) * (3.0 if cfg.num_warps == favoured else 1.0)
    shapes = [(16, 4096, 4096), (32, 8192, 4096), (256, 4096, 4096), (64, 14336, 4096)]
    x, y = [], []
    for m, n, k in shapes:
        for _, cfg in rank_configs(m, n, k, spec, 2, 3, 128)[:60]:
            p = predict_ms(m, n, k, cfg, spec, 2, 3, 128)
            x.append(tile_forest.features(m, n, k, cfg, 3, p))
            y.append(math.log(real_ms(m, n, k, cfg) / p))
    forest = tile_forest.Forest.fit(np.array(x), np.array(y), trees=20, seed=1)
    monkeypatch.setattr(tile_forest, "POLICY_DIR", str(tmp_path))
    forest.save(tile_forest.path_for(spec.name), spec.name, "synthetic test sweep")
    monkeypatch.setattr(tile_forest, "_loaded", {})
    loaded = tile_forest.for_gpu(spec.name)
    assert np.allclose(loaded.predict(x[:5]), forest.predict(x[:5]))
    ranked = rank_configs(128, 8192, 8192, spec, 2, 3, 128)  # a held-out shape
    assert all(c.num_warps != favoured for _, c in ranked[:5])
