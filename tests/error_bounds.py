"""Error bounds shared by the tests (conftest) and the op fuzzer (tests/fuzz/fuzz_ops.py).

A sum's rounding error scales with the size of the terms summed, not with the result (a few
outputs that cancel have a meaningless relative error), so the bounds are elementwise against
sum_k |x[m, k]| * |term[n, k]|, with |term| = sum_b |alpha_b| + |offset| for a BCQ weight.
"""
import torch

# int8 activation tables: a 32-activation block's 8 quad sums round by at most largest/254 each,
# so |int8 - exact| <= 8/254 of sum |x| * sum_b |alpha_b| (csrc/cpu/lut_gemm/lut_tables_int8.cpp).
INT8_TABLE_BOUND = 8 / 254


def abs_weight(planes: torch.Tensor, alpha: torch.Tensor, offset: torch.Tensor):
    """(planes of all +1, |alpha|, |offset|): the BCQ weight whose value is each term's largest size."""
    return torch.full_like(planes, 255), alpha.abs(), offset.abs()
