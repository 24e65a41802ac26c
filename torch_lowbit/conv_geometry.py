"""Conv arguments as the ops take them: F.conv2d's padding forms normalised to
[top, bottom, left, right], ints or pairs to pairs, and the output size.

    >>> from torch_lowbit.conv_geometry import conv_padding
    >>> conv_padding("same", kernel=(3, 4), stride=(1, 1), dilation=(1, 1))
    [1, 1, 1, 2]
"""
from __future__ import annotations

from collections.abc import Sequence

IntPair = int | Sequence[int]


def conv_out_hw(h: int, w: int, r: int, s: int, stride, padding, dilation) -> tuple[int, int]:
    """Output height and width of a conv on an input padded by [top, bottom, left, right]."""
    oh = (h + padding[0] + padding[1] - dilation[0] * (r - 1) - 1) // stride[0] + 1
    ow = (w + padding[2] + padding[3] - dilation[1] * (s - 1) - 1) // stride[1] + 1
    return oh, ow


def pair(value: IntPair, name: str) -> list[int]:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int or a pair of ints, got bool")
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def conv_padding(padding: IntPair | str, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> list[int]:
    """F.conv2d's padding as [top, bottom, left, right] ('same' puts the odd extra at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0, 0, 0]
        if padding != "same":
            raise ValueError(f"padding: expected an int, a pair, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError("padding: 'same' needs stride 1 (as in F.conv2d)")
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and all(isinstance(v, int) for v in padding):
        pads = [int(v) for v in padding]
    else:
        ph, pw = pair(padding, "padding")
        pads = [ph, ph, pw, pw]
    if any(p < 0 for p in pads):
        raise ValueError(f"padding: expected values >= 0, got {padding!r}")
    return pads
