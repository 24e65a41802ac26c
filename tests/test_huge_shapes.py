"""Layers past 2^31: an 8-bit weight with N*K > 2^31 has more than 2^31 plane bytes, so any
32-bit index into the planes wraps. The kernels index in 64 bits; this checks it on the rows
whose bytes sit past 2^31 (and the first rows), against the reference on those rows alone.

The default run allocates ~2.2 GB. Ops whose *output* or dense operand has more than 2^31
elements (bcq_dequantize of such a weight: 8.6 GB of fp32; dense tiled GEMM and im2win conv at
that size) run with TORCH_LOWBIT_TEST_HUGE_OUTPUTS=1 (needs ~20 GB of memory; a conv *input* past
2^31 elements needs ~34 GB: the kernel's fp32 NHWC copy of it alone is 8.6 GB)."""
import os

import pytest
import torch

import torch_lowbit
from torch_lowbit import reference
from torch_lowbit.format import PANEL_ROWS

BITS, PANELS, K = 8, 257, 1 << 19  # N = 4112 rows, N*K = 2^31 + 2^23
N = PANELS * PANEL_ROWS
HUGE_OUTPUTS = os.environ.get("TORCH_LOWBIT_TEST_HUGE_OUTPUTS", "") not in ("", "0")


@pytest.fixture(scope="module")
def huge_weight():
    assert N * K > 2**31 and BITS * N * K // 8 > 2**31
    g = torch.Generator().manual_seed(0)
    block = torch.randint(0, 256, (1 << 24,), dtype=torch.uint8, generator=g)
    total = BITS * PANELS * (K // 8) * PANEL_ROWS
    planes = block.repeat(total // block.numel() + 1)[:total]
    planes = planes.view(BITS, PANELS, K // 8, PANEL_ROWS)
    # Make every panel differ (the repeated block would otherwise line up with the panels).
    planes[:, :, 0, :] = torch.randint(0, 256, (BITS, PANELS, PANEL_ROWS), dtype=torch.uint8, generator=g)
    alpha = (torch.rand(BITS, 1, N, generator=g) * 1e-3 + 1e-4).to(torch.float16)
    offset = (torch.randn(1, N, generator=g) * 1e-3).to(torch.float16)
    return torch_lowbit.QuantizedWeight(planes, alpha, offset, (N, K), -1)


def _reference_rows(x, qw, panel):
    rows = slice(panel * PANEL_ROWS, (panel + 1) * PANEL_ROWS)
    sub_planes = qw.planes[:, panel : panel + 1].contiguous()
    return reference.bcq_linear(x.float(), sub_planes, qw.alpha[:, :, rows].float(), qw.offset[:, rows].float(), K, qw.effective_group_size)


@pytest.mark.parametrize("m", [1, 40], ids=["lut-m1", "tiled-m40"])
def test_linear_past_2_pow_31_plane_bytes(huge_weight, m):
    x = torch.randn(m, K, generator=torch.Generator().manual_seed(m))
    y = torch_lowbit.ops.linear(x, huge_weight)
    assert y.shape == (m, N) and torch.isfinite(y).all()
    # Panel 0 and the last panels: the last one's plane-7 bytes start past 2^31.
    last_plane_start = (BITS - 1) * PANELS * (K // 8) * PANEL_ROWS
    assert last_plane_start + (PANELS - 1) * (K // 8) * PANEL_ROWS > 2**31
    for panel in (0, PANELS // 2, PANELS - 1):
        ref = _reference_rows(x, huge_weight, panel)
        got = y[:, panel * PANEL_ROWS : (panel + 1) * PANEL_ROWS]
        err = ((got - ref).norm() / ref.norm()).item()
        assert err < 2e-2, (panel, err)  # int8 activation tables: ~1% (docs/DESIGN.md)


@pytest.mark.skipif(not HUGE_OUTPUTS, reason="set TORCH_LOWBIT_TEST_HUGE_OUTPUTS=1 (needs ~20 GB)")
def test_dequantize_past_2_pow_31_elements(huge_weight):
    w = huge_weight.dequantize(torch.float16)
    assert w.shape == (N, K)
    for panel in (0, PANELS - 1):
        rows = slice(panel * PANEL_ROWS, (panel + 1) * PANEL_ROWS)
        ref = reference.bcq_dequantize(huge_weight.planes[:, panel : panel + 1].contiguous(), huge_weight.alpha[:, :, rows].float(),
                                       huge_weight.offset[:, rows].float(), K, huge_weight.effective_group_size)
        assert torch.allclose(w[rows].float(), ref, rtol=1e-3, atol=1e-5)


@pytest.mark.skipif(not HUGE_OUTPUTS, reason="set TORCH_LOWBIT_TEST_HUGE_OUTPUTS=1 (needs ~20 GB)")
def test_dense_tiled_gemm_past_2_pow_31_weight_elements():
    n, k = 4112, 1 << 19
    w = torch.ones(n, k, dtype=torch.bfloat16)
    w[-1] = 2
    x = torch.ones(2, k, dtype=torch.bfloat16)
    y = torch_lowbit.ops.tiled_gemm(x, w).float()
    assert torch.equal(y[:, :-1], torch.full((2, n - 1), float(k))) and torch.equal(y[:, -1], torch.full((2,), 2.0 * k))


@pytest.mark.skipif(not HUGE_OUTPUTS, reason="set TORCH_LOWBIT_TEST_HUGE_OUTPUTS=1 (needs ~20 GB)")
def test_conv_past_2_pow_31_output_elements():
    # 64 output channels of a 2^25 + 2^13 pixel image: output offsets past 2^31, input 64 MB.
    h, w = 1 << 12, (1 << 13) + 2
    x = torch.ones(1, 1, h, w, dtype=torch.bfloat16)
    x[0, 0, -1, -1] = 3
    weight = torch.arange(1, 65, dtype=torch.bfloat16).reshape(64, 1, 1, 1)
    y = torch_lowbit.ops.im2win_conv2d(x, weight)
    assert y.shape == (1, 64, h, w) and y.numel() > 2**31
    assert y[0, 0, 0, 0].item() == 1 and y[0, 63, 0, 0].item() == 64 and y[0, 63, -1, -1].item() == 192


def _available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return 0.0


@pytest.mark.skipif(not HUGE_OUTPUTS or _available_gb() < 34, reason="set TORCH_LOWBIT_TEST_HUGE_OUTPUTS=1, needs ~34 GB free")
def test_conv_past_2_pow_31_input_elements():
    x = torch.ones(1, 2, 1 << 15, (1 << 15) + 8, dtype=torch.bfloat16)  # 2^31 + 2^19 elements
    x[0, :, -1, -1] = 3
    w = torch.ones(1, 2, 1, 1, dtype=torch.bfloat16)
    y = torch_lowbit.ops.im2win_conv2d(x, w)
    assert y.shape == (1, 1, 1 << 15, (1 << 15) + 8)
    assert y[0, 0, 0, 0].item() == 2 and y[0, 0, -1, -1].item() == 6
