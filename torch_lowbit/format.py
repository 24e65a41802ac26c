"""The BCQ weight format and the QuantizedWeight container (storage layout: docs/FORMAT.md).

    W[n, k] = sum_{b < bits} alpha[b, g, n] * s_b[n, k] + offset[g, n],   g = k // group_size

s_b[n, k] = +1 where bit (k % 8) of byte (b, n, k // 8) is set, else -1. The planes are stored
panel-major, [bits, ceil(N / 16), Kp / 8, 16]: the 16 rows of a panel sit side by side for each
byte column (docs/FORMAT.md). K is padded to Kp, a multiple of the effective group size (and of
32); padded columns are multiplied by zero activations in every kernel, so they never leak into
results; padded rows of the last panel are zero bits and never read into an output.
"""
from __future__ import annotations

import math
from typing import Any

import torch

FORMAT_VERSION = 1
ALLOWED_GROUP_SIZES = (32, 64, 128, 256, -1)  # -1: one group per output row ("per channel")
ALLOWED_SCALE_DTYPES = (torch.float16, torch.float32)
PANEL_ROWS = 16
_BIT_WEIGHTS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits: expected an int from 1 to 8, got {type(bits).__name__}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits: expected 1 to 8, got {bits}")
    return bits


def check_group_size(group_size: Any) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise TypeError(f"group_size: expected an int, got {type(group_size).__name__}")
    if group_size not in ALLOWED_GROUP_SIZES:
        raise ValueError(f"group_size: expected one of {ALLOWED_GROUP_SIZES} (-1 = per channel), got {group_size}")
    return group_size


def padded_layout(in_features: int, group_size: int) -> tuple[int, int]:
    """(Kp, effective group size) for K = in_features: Kp is a multiple of both and of 32."""
    if group_size == -1:
        kp = math.ceil(in_features / 32) * 32
        return kp, kp
    return math.ceil(in_features / group_size) * group_size, group_size


def panels(n: int) -> int:
    return -(-n // PANEL_ROWS)


def pack_signs(signs: torch.Tensor) -> torch.Tensor:
    """bool [bits, N, Kp] (True = +1) -> uint8 planes [bits, ceil(N/16), Kp // 8, 16]:
    bit k % 8 of byte column k // 8, rows of a 16-row panel side by side."""
    bits, n, kp = signs.shape
    weights = _BIT_WEIGHTS.to(signs.device)
    grouped = signs.reshape(bits, n, kp // 8, 8).to(torch.uint8)
    rows = (grouped * weights).sum(dim=-1, dtype=torch.uint8)  # [bits, N, Kp/8]
    return panel_major(rows)


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes [N, Kp] (bit b of a code = plane b's sign) -> planes as pack_signs makes them.
    One byte column at a time, so the temporaries stay at 1/8 of a plane (pack_signs of the
    unpacked signs holds ~2 x bits bytes per weight: 1.5x a 3-bit layer's float weight, which
    is what bounded quantize-while-loading's peak memory)."""
    n, kp = codes.shape
    rows = codes.new_zeros((bits, n, kp // 8))
    for j in range(8):
        column = codes[:, j::8]  # weight j of every byte column: [N, Kp / 8]
        for b in range(bits):
            rows[b] |= ((column >> b) & 1) << j
    return panel_major(rows)


def panel_major(rows: torch.Tensor) -> torch.Tensor:
    """Row-major plane bytes [bits, N, Kp // 8] -> the stored panel-major planes
    [bits, ceil(N/16), Kp // 8, 16], the last panel's missing rows zero (row_bytes inverts it)."""
    bits, n, c = rows.shape
    rows = torch.nn.functional.pad(rows, (0, 0, 0, panels(n) * PANEL_ROWS - n))
    return rows.reshape(bits, panels(n), PANEL_ROWS, c).transpose(2, 3).contiguous()


def row_bytes(planes: torch.Tensor, n: int) -> torch.Tensor:
    """Panel-major planes -> row-major bytes [bits, N, Kp // 8]."""
    bits, p, c, _ = planes.shape
    return planes.transpose(2, 3).reshape(bits, p * PANEL_ROWS, c)[:, :n]


def unpack_signs(planes: torch.Tensor, n: int) -> torch.Tensor:
    """uint8 planes [bits, ceil(N/16), Kp // 8, 16] -> bool [bits, N, Kp]."""
    rows = row_bytes(planes, n)
    shifts = torch.arange(8, device=planes.device, dtype=torch.uint8)
    return ((rows.unsqueeze(-1) >> shifts) & 1).reshape(rows.shape[0], n, -1).bool()


def empty_planes(shape: tuple[int, ...], bits: int, group_size: int, scale_dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uninitialised (planes, alpha, offset) of the right shapes for a weight of `shape`."""
    n, k = shape[0], math.prod(shape[1:])
    kp, g = padded_layout(k, group_size)
    planes = torch.empty(bits, panels(n), kp // 8, PANEL_ROWS, dtype=torch.uint8, device=device)
    alpha = torch.empty(bits, kp // g, n, dtype=scale_dtype, device=device)
    offset = torch.empty(kp // g, n, dtype=scale_dtype, device=device)
    return planes, alpha, offset


class QuantizedWeight:
    """A low-bit weight in BCQ form, for `torch_lowbit.ops` and the patched modules.

    `shape` is the original float weight's shape: [N, K] for a linear layer, [O, C/groups, R, S]
    for a convolution (quantized over its flattened [O, C/groups * R * S] rows). `out_features`
    (N), `in_features` (K) and `effective_group_size` (the group size the kernels use: per
    channel resolves to the padded K) are fixed at construction.

    Example:
        >>> import torch, torch_lowbit
        >>> qw = torch_lowbit.quantize_weight(torch.randn(64, 100), bits=3, group_size=32)
        >>> qw
        QuantizedWeight(shape=(64, 100), bits=3, group_size=32, method='rtn', scale_dtype=torch.float16, device=cpu)
        >>> qw.dequantize().shape
        torch.Size([64, 100])
    """

    def __init__(
        self,
        planes: torch.Tensor,
        alpha: torch.Tensor,
        offset: torch.Tensor,
        shape: tuple[int, ...] | torch.Size,
        group_size: int,
        method: str = "rtn",
    ) -> None:
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 4):
            raise ValueError(f"shape: expected a 2-D [N, K] or 4-D [O, C/g, R, S] weight shape, got {shape}")
        check_group_size(group_size)
        n, k = shape[0], math.prod(shape[1:])
        kp, g = padded_layout(k, group_size)
        if planes.dtype != torch.uint8 or planes.dim() != 4 or planes.shape[1:] != (panels(n), kp // 8, PANEL_ROWS):
            raise ValueError(f"planes: expected uint8 [bits, {panels(n)}, {kp // 8}, {PANEL_ROWS}], got {planes.dtype} {tuple(planes.shape)}")
        bits = check_bits(planes.shape[0])
        if alpha.dtype not in ALLOWED_SCALE_DTYPES or tuple(alpha.shape) != (bits, kp // g, n):
            raise ValueError(f"alpha: expected fp16/fp32 [{bits}, {kp // g}, {n}], got {alpha.dtype} {tuple(alpha.shape)}")
        if offset.dtype != alpha.dtype or tuple(offset.shape) != (kp // g, n):
            raise ValueError(f"offset: expected {alpha.dtype} [{kp // g}, {n}], got {offset.dtype} {tuple(offset.shape)}")
        if not (planes.device == alpha.device == offset.device):
            raise ValueError("planes, alpha and offset: expected on one device")
        self.planes, self.alpha, self.offset = planes, alpha, offset
        self.shape = shape
        self.group_size = group_size
        self.method = method
        # Geometry fixed at construction (read on every op call).
        self.out_features, self.in_features, self.effective_group_size = n, k, g

    # ---- geometry ----
    @property
    def bits(self) -> int:
        return int(self.planes.shape[0])

    @property
    def padded_in_features(self) -> int:
        return int(self.planes.shape[2]) * 8

    @property
    def device(self) -> torch.device:
        return self.planes.device

    @property
    def scale_dtype(self) -> torch.dtype:
        return self.alpha.dtype

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.planes, self.alpha, self.offset))

    def op_args(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """(planes, alpha, offset, in_features, effective group size) as the ops take them."""
        return self.planes, self.alpha, self.offset, self.in_features, self.effective_group_size

    # ---- conversion ----
    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight this represents, in its original shape.

        Runs the bcq_dequantize op: the compiled kernel on CPU/CUDA tensors where the extension
        has one, its plain-PyTorch reference elsewhere (torch_lowbit/library.py).
        """
        planes, alpha, offset, k, g = self.op_args()
        w = torch.ops.torch_lowbit.bcq_dequantize(planes, alpha.float(), offset.float(), k, g)
        return w.reshape(self.shape).to(dtype)

    def to(self, *args: Any, **kwargs: Any) -> "QuantizedWeight":
        """Move to a device. A floating dtype argument converts the scales (fp16/fp32 only)."""
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        planes, alpha, offset = self.planes, self.alpha, self.offset
        if device is not None:
            planes, alpha, offset = planes.to(device), alpha.to(device), offset.to(device)
        if dtype is not None:
            if dtype not in ALLOWED_SCALE_DTYPES:
                raise ValueError(f"dtype: scales are stored as fp16 or fp32, got {dtype}")
            alpha, offset = alpha.to(dtype), offset.to(dtype)
        return QuantizedWeight(planes, alpha, offset, self.shape, self.group_size, self.method)

    def cpu(self) -> "QuantizedWeight":
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> "QuantizedWeight":
        return self.to(torch.device("cuda") if device is None else torch.device("cuda", device) if isinstance(device, int) else device)

    # ---- slicing (tensor parallelism: torch_lowbit/tensor_parallel.py) ----
    def row_slice(self, start: int, stop: int) -> "QuantizedWeight":
        """Output rows [start, stop) as a QuantizedWeight of their own, cut on whole 16-row
        panels: `start` a multiple of 16, `stop` a multiple of 16 or N. Copies (contiguous).

        Example:
            >>> import torch, torch_lowbit
            >>> qw = torch_lowbit.quantize_weight(torch.randn(40, 64), bits=3, group_size=32)
            >>> torch.equal(qw.row_slice(16, 40).dequantize(), qw.dequantize()[16:40])
            True
        """
        n = self.out_features
        if not (0 <= start < stop <= n) or start % PANEL_ROWS or (stop % PANEL_ROWS and stop != n):
            raise ValueError(f"row_slice: expected 0 <= start < stop <= {n} on {PANEL_ROWS}-row panel boundaries (start a multiple "
                             f"of {PANEL_ROWS}, stop a multiple of {PANEL_ROWS} or {n}), got [{start}, {stop})")
        planes = self.planes[:, start // PANEL_ROWS : panels(stop)].contiguous()
        alpha, offset = self.alpha[:, :, start:stop].contiguous(), self.offset[:, start:stop].contiguous()
        return QuantizedWeight(planes, alpha, offset, (stop - start, *self.shape[1:]), self.group_size, self.method)

    def column_slice(self, start: int, stop: int) -> "QuantizedWeight":
        """Input columns [start, stop) of a linear weight, cut on whole groups (with their
        scales): `start` a multiple of the group size, `stop` a multiple of it or K. Copies.

        Example:
            >>> import torch, torch_lowbit
            >>> qw = torch_lowbit.quantize_weight(torch.randn(40, 100), bits=3, group_size=32)
            >>> torch.equal(qw.column_slice(64, 100).dequantize(), qw.dequantize()[:, 64:100])
            True
        """
        if len(self.shape) != 2:
            raise ValueError(f"column_slice: expected a linear weight [N, K], got shape {self.shape}")
        k, g = self.in_features, self.effective_group_size
        if self.group_size == -1 and (start, stop) != (0, k):
            raise ValueError("column_slice: a per-channel weight (group_size=-1) has one group per row and cannot be cut by columns")
        if not (0 <= start < stop <= k) or start % g or (stop % g and stop != k):
            raise ValueError(f"column_slice: expected 0 <= start < stop <= {k} on group boundaries (start a multiple of the group "
                             f"size {g}, stop a multiple of it or {k}), got [{start}, {stop})")
        kp = padded_layout(stop - start, self.group_size)[0]
        planes = self.planes[:, :, start // 8 : (start + kp) // 8].contiguous()
        g0, g1 = start // g, (start + kp) // g
        alpha, offset = self.alpha[:, g0:g1].contiguous(), self.offset[g0:g1].contiguous()
        return QuantizedWeight(planes, alpha, offset, (self.shape[0], stop - start), self.group_size, self.method)

    def state(self) -> dict[str, torch.Tensor]:
        return {"planes": self.planes, "alpha": self.alpha, "offset": self.offset}

    def __repr__(self) -> str:
        return (
            f"QuantizedWeight(shape={self.shape}, bits={self.bits}, group_size={self.group_size}, "
            f"method={self.method!r}, scale_dtype={self.scale_dtype}, device={self.device})"
        )
