"""The BCQ weight format: packing, the exact RTN conversion, padding, QuantizedWeight."""
import pytest
import torch

import torch_lowbit
from torch_lowbit import reference
from torch_lowbit.format import pack_signs, padded_layout, unpack_signs


def test_pack_unpack_round_trip():
    signs = torch.rand(3, 5, 64) > 0.5
    planes = pack_signs(signs)
    assert planes.dtype == torch.uint8 and planes.shape == (3, 1, 8, 16)  # 5 rows -> one 16-row panel
    assert torch.equal(unpack_signs(planes, 5), signs)
    assert (planes[:, :, :, 5:] == 0).all()  # padded rows are zero bits


def test_bit_order_is_lsb_first():
    signs = torch.zeros(1, 18, 32, dtype=torch.bool)
    signs[0, 17, 9] = True  # row 17 = panel 1, lane 1; k = 9 -> byte column 1, bit 1
    planes = pack_signs(signs)
    assert planes.shape == (1, 2, 4, 16)
    assert planes.nonzero().tolist() == [[0, 1, 1, 1]] and planes[0, 1, 1, 1] == 2


@pytest.mark.parametrize("bits", range(1, 9))
def test_rtn_matches_uniform_quantization_exactly(bits):
    """rtn = min/max round-to-nearest with an integer zero point, exactly, in BCQ form."""
    w = torch.randn(16, 128)
    qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=32, method="rtn", scale_dtype=torch.float32)
    g = w.reshape(16, 4, 32)
    qmax = 2**bits - 1
    low, high = g.amin(-1, keepdim=True).clamp(max=0), g.amax(-1, keepdim=True).clamp(min=0)
    scale = (high - low) / qmax
    zp = (-low / scale).round().clamp(0, qmax)
    expected = (((g / scale).round() + zp).clamp(0, qmax) - zp) * scale
    assert torch.allclose(qw.dequantize(), expected.reshape(16, 128), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bits,bound", [(3, 0.25), (4, 0.12)])
def test_gaussian_round_trip_error(bits, bound):
    w = torch.randn(512, 1024)
    qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=128)
    err = ((qw.dequantize() - w).norm() / w.norm()).item()
    assert err < bound, err


@pytest.mark.parametrize("group_size", [32, 64, 128, 256, -1])
@pytest.mark.parametrize("k", [1, 37, 100, 256, 300])
def test_padding_and_group_sizes(group_size, k):
    w = torch.randn(7, k)
    qw = torch_lowbit.quantize_weight(w, bits=4, group_size=group_size)
    kp, g = padded_layout(k, group_size)
    assert qw.padded_in_features == kp and kp % g == 0 and kp % 32 == 0
    assert qw.dequantize().shape == (7, k)
    err = ((qw.dequantize() - w).norm() / w.norm()).item()
    assert err < 0.2
    # Padding bits never leak: x padded with garbage in the padded tail does not exist for ops,
    # and the dequantized weight has exactly K columns.
    x = torch.randn(3, k)
    assert torch.allclose(torch_lowbit.ops.lut_gemm(x, qw, backend="reference"), x @ qw.dequantize().T, atol=1e-4)


def test_conv_weight_is_quantized_over_flattened_rows():
    w = torch.randn(8, 3, 3, 3)
    qw = torch_lowbit.quantize_weight(w, bits=4, group_size=32)
    assert qw.shape == (8, 3, 3, 3) and qw.in_features == 27 and qw.out_features == 8
    flat = torch_lowbit.quantize_weight(w.reshape(8, 27), bits=4, group_size=32)
    assert torch.equal(qw.dequantize().reshape(8, 27), flat.dequantize())


def test_quantized_weight_to_and_repr():
    qw = torch_lowbit.quantize_weight(torch.randn(10, 40), bits=3, group_size=32)
    assert "bits=3" in repr(qw) and "group_size=32" in repr(qw) and "shape=(10, 40)" in repr(qw)
    q32 = qw.to(torch.float32)
    assert q32.scale_dtype == torch.float32 and qw.scale_dtype == torch.float16
    assert torch.equal(q32.planes, qw.planes)
    assert qw.to("cpu").device == torch.device("cpu")
    assert qw.nbytes == qw.planes.numel() + 2 * (qw.alpha.numel() + qw.offset.numel())
    with pytest.raises(ValueError, match="dtype"):
        qw.to(torch.bfloat16)


def test_native_dequantize_matches_reference():
    qw = torch_lowbit.quantize_weight(torch.randn(33, 70), bits=5, group_size=64, scale_dtype=torch.float32)
    out = torch.ops.torch_lowbit.bcq_dequantize(*qw.op_args())
    assert torch.allclose(out, reference.bcq_dequantize(*qw.op_args()), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(bits=0), ValueError, "bits"),
        (dict(bits=9), ValueError, "bits"),
        (dict(bits=3.0), TypeError, "bits"),
        (dict(group_size=100), ValueError, "group_size"),
        (dict(method="nope"), ValueError, "method"),
        (dict(scale_dtype=torch.bfloat16), ValueError, "scale_dtype"),
    ],
)
def test_quantize_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        torch_lowbit.quantize_weight(torch.randn(8, 64), **kwargs)


def test_quantize_rejects_bad_weights():
    with pytest.raises(TypeError, match="w"):
        torch_lowbit.quantize_weight(torch.randint(0, 3, (8, 64)))
    with pytest.raises(ValueError, match="w"):
        torch_lowbit.quantize_weight(torch.randn(8, 64, 2))
    with pytest.raises(ValueError, match="NaN"):
        torch_lowbit.quantize_weight(torch.full((8, 64), float("nan")))


@pytest.mark.parametrize("n,kp,bits", [(1, 32, 1), (5, 64, 3), (37, 96, 8), (16, 256, 4)])
def test_pack_codes_equals_pack_signs_of_the_code_bits(n, kp, bits):
    from torch_lowbit.format import pack_codes

    codes = torch.randint(0, 2**bits, (n, kp), dtype=torch.uint8)
    signs = ((codes.unsqueeze(0) >> torch.arange(bits, dtype=torch.uint8).view(bits, 1, 1)) & 1).bool()
    assert torch.equal(pack_codes(codes, bits), pack_signs(signs))


@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32])
def test_row_and_column_slices_are_the_dequantized_slices(bits, group_size, scale_dtype):
    # Odd N (a partial last panel) and K that is not a multiple of the group size (padding).
    w = torch.randn(53, 3 * group_size + 21)
    qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=group_size, method="bcq", scale_dtype=scale_dtype)
    full = qw.dequantize()
    for start, stop in [(0, 16), (16, 53), (48, 53), (0, 53)]:
        part = qw.row_slice(start, stop)
        assert part.shape == (stop - start, w.shape[1]) and part.alpha.dtype == scale_dtype
        assert torch.equal(part.dequantize(), full[start:stop])
    k = w.shape[1]
    for start, stop in [(0, group_size), (group_size, 3 * group_size), (2 * group_size, k), (0, k)]:
        part = qw.column_slice(start, stop)
        assert part.shape == (53, stop - start)
        assert torch.equal(part.dequantize(), full[:, start:stop])
        x = torch.randn(3, stop - start)
        torch.testing.assert_close(torch_lowbit.ops.linear(x, part, backend="reference"), x @ full[:, start:stop].T, rtol=1e-4, atol=1e-4)


def test_slices_reject_cuts_off_panel_or_group_boundaries():
    qw = torch_lowbit.quantize_weight(torch.randn(40, 100), bits=3, group_size=32)
    with pytest.raises(ValueError, match="row_slice: .*panel boundaries"):
        qw.row_slice(8, 40)
    with pytest.raises(ValueError, match="row_slice"):
        qw.row_slice(0, 41)
    with pytest.raises(ValueError, match="column_slice: .*group boundaries"):
        qw.column_slice(0, 48)
    with pytest.raises(ValueError, match="per-channel"):
        torch_lowbit.quantize_weight(torch.randn(40, 100), bits=3, group_size=-1).column_slice(0, 64)
    with pytest.raises(ValueError, match="linear weight"):
        torch_lowbit.quantize_weight(torch.randn(16, 4, 3, 3), bits=3, group_size=32).column_slice(0, 32)
