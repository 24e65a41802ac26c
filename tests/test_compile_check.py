"""The ahead-of-time GPU compile check (torch_lowbit/compile_check/): it compiles for sm_80/89/90
without a GPU, and it must catch what it is there to catch — a planted spill, a tile too large for
the card's shared memory, byte-wide weight loads — while passing the configs the tile model picks.

The compiles run in a subprocess without TRITON_INTERPRET (conftest sets it for the interpreter
tests, and under it @triton.jit makes interpreter objects that cannot be compiled)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from torch_lowbit import dispatch

pytestmark = pytest.mark.skipif(not dispatch.triton_available(), reason="needs triton")

SPILLING_KERNEL = """
import triton
import triton.language as tl

@triton.jit
def planted_spill(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    # a [BLOCK, BLOCK] fp32 accumulator over one warp: far more values than 255 registers hold
    rows = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for i in range(0, n):
        v = tl.load(x_ptr + i * BLOCK + rows)
        acc += v[:, None] * v[None, :] + acc * 0.5
    tl.store(y_ptr + rows[:, None] * BLOCK + rows[None, :], acc)
"""


def compiled(code: str, tmp_path):
    """Run `code` (which sets `result`) in a fresh interpreter without TRITON_INTERPRET; its result."""
    script = tmp_path / "compile_case.py"
    script.write_text(SPILLING_KERNEL + textwrap.dedent("""
        import json, sys, torch
        from torch_lowbit.compile_check.triton_cases import Case
        from torch_lowbit.compile_check.triton_report import check_case
        from torch_lowbit.triton_kernels import Launch
    """) + textwrap.dedent(code) + "\nprint('RESULT ' + json.dumps(result, default=str))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.rsplit("RESULT ", 1)[1])


def test_planted_spill_is_caught(tmp_path):
    record = compiled("""
        launch = Launch(planted_spill, (1,), (torch.float32, torch.float32), (64,), dict(BLOCK=128, num_warps=1))
        result = check_case(Case(90, launch))
    """, tmp_path)
    assert record["stack"] + record["local"] > 0
    assert any(p.startswith("H100: spills") for p in record["problems"]), record["problems"]


def test_tile_too_large_for_shared_memory_is_caught(tmp_path):
    record = compiled("""
        from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm_launch
        launch, _ = bcq_gemm_launch(256, 4096, 4096, 3, 4096, 128, torch.float16, torch.float16, block_m=256, block_n=256,
                                    block_k=128, num_warps=8, num_stages=5)
        result = check_case(Case(80, launch))
    """, tmp_path)
    assert record["shared"] > 163 * 1024
    assert any("bytes of shared memory per block > 166912 (A100)" in p for p in record["problems"]), record["problems"]


def test_picked_gemv_passes_with_16_byte_weight_loads(tmp_path):
    record = compiled("""
        from torch_lowbit.backends.triton.tile_model import GPU_SPECS, gemv_config
        from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv_launch
        c = gemv_config(28672, 7168, GPU_SPECS["H100"], 128)
        launch, _ = bcq_gemv_launch(28672, 7168, 3, 7168, 128, torch.float16, torch.float16, c.block_n, c.block_k, c.split_k,
                                    c.num_warps, c.num_stages)
        result = check_case(Case(90, launch, wide_weights=1))
    """, tmp_path)
    assert record["problems"] == []
    assert set(record["loads"]["planes_ptr"]) == {"16"}


def test_byte_wide_weight_loads_are_caught(tmp_path):
    # 16 rows x 4 k-bytes per step over 4 warps: 4 bytes per thread, not 16
    record = compiled("""
        from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv_launch
        launch, _ = bcq_gemv_launch(4096, 4096, 3, 4096, 128, torch.float16, torch.float16, 16, 32, 1, 4)
        result = check_case(Case(80, launch, wide_weights=1))
    """, tmp_path)
    assert any("weight stream planes_ptr loaded" in p for p in record["problems"]), record["problems"]


def test_tensor_cores_are_found_in_the_tiled_kernels(tmp_path):
    records = compiled("""
        from torch_lowbit.triton_kernels.dense_gemm import dense_gemm_launch
        launch = dense_gemm_launch(4096, 4096, 4096, torch.float16, torch.float16, 128, 128, 32, num_warps=8)
        result = [check_case(Case(arch, launch, wide_weights=1)) for arch in (80, 90)]
    """, tmp_path)
    for record, prefix in zip(records, ("HMMA", "HGMMA")):
        assert record["problems"] == [] and any(t.startswith(prefix) for t in record["tensor_core"]), record


def test_ptx_load_attribution():
    from torch_lowbit.compile_check.ptx_loads import global_load_widths

    ptx = """
    ld.param.b64 %rd1, [k_param_0];
    ld.param.b64 %rd2, [k_param_1];
    ld.param.b32 %r1, [k_param_2];
    mul.wide.s32 %rd3, %r1, 4;
    add.s64 %rd4, %rd1, %rd3;
    @%p1 ld.global.v4.b32 { %r2, %r3, %r4, %r5 }, [ %rd4 + 0 ];
    $L1:
    add.s64 %rd6, %rd5, 16;
    @%p2 ld.global.b8 %rs1, [ %rd6 + 0 ];
    mov.b64 %rd5, %rd2;
    cp.async.cg.shared.global [ %r6 + 0 ], [ %rd2 + 0 ], 0x10, %r7;
    """
    # %rd5 gets its pointer only after its use: the loop-carried case needs the fixed point
    assert global_load_widths(ptx, 2) == {0: {16: 1}, 1: {1: 1, 16: 1}}


def test_resource_usage_parsing():
    from torch_lowbit.compile_check.resources import Resources, parse_resource_usage

    text = """
arch = sm_80
 Function _Z3fooPf:
  REG:40 STACK:8 SHARED:1024 LOCAL:4 CONSTANT[0]:400 TEXTURE:0 SURFACE:0 SAMPLER:0
arch = sm_90
 Function _Z3fooPf:
  REG:32 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:400 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
    assert parse_resource_usage(text) == [Resources("_Z3fooPf", 80, 40, 8, 1024, 4), Resources("_Z3fooPf", 90, 32, 0, 0, 0)]


def test_tile_model_skips_configs_the_compiler_rejected():
    from torch_lowbit.backends.triton import compiled_resources, tile_model

    spec = tile_model.GPU_SPECS["H100"]
    try:
        compiled_resources.set_table({})
        first = tile_model.default_config(16, 4096, 4096, spec, 2, 3, 128)
        key = compiled_resources.key(spec.cc, "bcq_gemm", 3, 2, first)
        compiled_resources.set_table({key: {"shared": 1024, "registers": 96, "spills": True}})
        assert tile_model.default_config(16, 4096, 4096, spec, 2, 3, 128) != first
        compiled_resources.set_table({key: {"shared": 300 * 1024, "registers": 96, "spills": False}})
        assert tile_model.default_config(16, 4096, 4096, spec, 2, 3, 128) != first
        compiled_resources.set_table({key: {"shared": 1024, "registers": 96, "spills": False}})
        assert tile_model.default_config(16, 4096, 4096, spec, 2, 3, 128) == first
    finally:
        compiled_resources.set_table(None)


def test_installed_table_covers_the_default_picks():
    # The committed torch_lowbit/data/triton_resources.json must describe the configs the model
    # picks now; after a kernel or model change: python -m torch_lowbit gpu-compile-check --update-resources
    from torch_lowbit.backends.triton import compiled_resources, tile_model

    compiled_resources.set_table(None)
    assert compiled_resources.table(), f"no {compiled_resources.PATH}"
    spec = tile_model.GPU_SPECS["H100"]
    cfg = tile_model.default_config(256, 28672, 7168, spec, 2, 3, 128)
    entry = compiled_resources.lookup(spec.cc, "bcq_gemm", 3, 2, cfg)
    assert entry is not None and not entry["spills"] and entry["shared"] <= spec.smem_per_block
