"""What the Triton ops would launch on each card: for every card of the tile model's GPU table,
the config its model picks (exactly as torch_lowbit/backends/triton/ops.py picks it) on the
benchmark shapes, turned into the kernels' Launch records. Launches that compile to the same
binary (same kernel, arch, dtypes, constexprs and integer specialization) are merged, keeping
the list of cards and shapes that pick them.

Shapes (those of benchmarks/gpu_kernels.py, plus one odd shape per family, since Triton compiles a
separate binary when sizes are not multiples of 16):
- low-bit GEMM/GEMV: (N, K) of the Llama-style projections, m = 1 (the GEMV), 4, 16, 32, 256,
  bits 1..8, group 128, fp16 activations and scales (bf16 activations, and fp32 with fp32 scales,
  at 3 bits);
- dense GEMM: the same (N, K) at m = 1, 16, 256 and squares 1024..8192, fp16/bf16 (fp32 once);
- im2win: the twelve layers of the im2win paper at batch 1 and 32, fp16 and fp32, dense and 3-bit;
- bcq_dequantize: bits 1..8 on the Triton backward's default tiles.
"""
from __future__ import annotations

import dataclasses

import torch

from torch_lowbit.backends.triton import compiled_resources, tile_model
from torch_lowbit.conv_geometry import conv_out_hw
from torch_lowbit.format import padded_layout
from torch_lowbit.triton_kernels.bcq_dequantize import bcq_dequantize_launch
from torch_lowbit.triton_kernels.bcq_gemm import bcq_gemm_launch
from torch_lowbit.triton_kernels.bcq_gemv import bcq_gemv_launch
from torch_lowbit.triton_kernels.dense_gemm import dense_gemm_launch
from torch_lowbit.triton_kernels.im2win_conv import im2win_conv2d_launches

ARCH_CARDS = {80: ("A100",), 86: ("A10",), 89: ("L4", "RTX 4090"), 90: ("H100", "H100 PCIe", "H200")}
DEFAULT_ARCHS = (80, 89, 90)
LOWBIT_SHAPES = [(28672, 7168), (4096, 4096), (14336, 4096), (4096, 14336), (8192, 8192), (4100, 1000)]
LOWBIT_ROWS = (1, 16, 256)
DENSE_SQUARES = (1024, 2048, 4096, 8192, 1000)
# (C, H=W, O, R=S, stride) of the im2win paper's layers (padding 0, as in benchmarks/gpu_kernels.py)
PAPER_LAYERS = [
    (3, 227, 96, 11, 4), (3, 231, 96, 11, 4), (3, 227, 64, 7, 2), (64, 224, 64, 7, 2), (96, 24, 256, 5, 1), (256, 12, 512, 3, 1),
    (3, 224, 64, 3, 1), (64, 112, 128, 3, 1), (64, 56, 64, 3, 1), (128, 28, 128, 3, 1), (256, 14, 256, 3, 1), (512, 7, 512, 3, 1),
]
_ACT_BYTES = {torch.float16: 2, torch.bfloat16: 2, torch.float32: 4}


@dataclasses.dataclass
class Case:
    """One binary to compile for one arch, and who launches it."""

    arch: int
    launch: object  # torch_lowbit.triton_kernels.Launch
    wide_weights: int | None = None  # index of the weight-stream pointer that must load 16 bytes at a time
    model_key: str | None = None  # its compiled_resources key, for configs the tile model ranks
    users: list = dataclasses.field(default_factory=list)  # "card: what" strings

    @property
    def kernel(self) -> str:
        return self.launch.kernel.__name__

    @property
    def threads(self) -> int:
        return 32 * self.launch.meta.get("num_warps", 4)


def _int_class(v: int):
    # what Triton specializes an integer argument on: == 1 (a constant), % 16 == 0, or neither
    return 1 if v == 1 else (16 if v % 16 == 0 else 0)


def binary_key(arch: int, launch, specializations: bool = False) -> tuple:
    """What makes a distinct binary. Without `specializations`, launches differing only in which
    integer arguments are multiples of 16 are merged (their resources and instruction mix barely
    differ; each kernel still gets its odd-shape variant through the odd shapes above)."""
    ints = tuple(_int_class(v) for v in launch.scalars)
    return (arch, launch.kernel.__name__, tuple(str(d) for d in launch.pointer_dtypes),
            ints if specializations else (0 in ints), tuple(sorted(launch.meta.items())))


def aligned(launch) -> bool:
    """Whether Triton may vectorize this launch's loads: every integer argument 1 or a multiple
    of 16 (an odd K or N leaves rows unaligned, and only scalar loads are possible)."""
    return all(_int_class(v) for v in launch.scalars)


def _lowbit(spec, m, n, k, bits, dtype, scale_dtype, group=128):
    kp, g = padded_layout(k, group)
    if m == 1:  # the GEMV: tiles by rule, not ranked by the model
        c = tile_model.gemv_config(n, kp, spec, g)
        launch, _ = bcq_gemv_launch(n, k, bits, kp, g, dtype, scale_dtype, c.block_n, c.block_k, c.split_k, c.num_warps, c.num_stages)
        return launch, 1, None
    c = tile_model.default_config(m, n, kp, spec, _ACT_BYTES[dtype], bits, g)
    launch, _ = bcq_gemm_launch(m, n, k, bits, kp, g, dtype, scale_dtype, c.block_m, c.block_n, c.block_k, c.split_k,
                                c.group_m, c.num_warps, c.num_stages)
    return launch, None, compiled_resources.key(spec.cc, "bcq_gemm", bits, _ACT_BYTES[dtype], c)


def _dense(spec, m, n, k, dtype):
    bits = 8 * _ACT_BYTES[dtype]
    c = tile_model.default_config(m, n, k, spec, _ACT_BYTES[dtype], bits)
    launch = dense_gemm_launch(m, n, k, dtype, dtype, c.block_m, c.block_n, c.block_k, c.group_m, c.num_warps, c.num_stages)
    return launch, 1, compiled_resources.key(spec.cc, "dense_gemm", bits, _ACT_BYTES[dtype], c)


def _conv(spec, batch, layer, dtype, bits):
    c, hw, o, r, stride = layer
    oh, ow = conv_out_hw(hw, hw, r, r, (stride, stride), (0, 0, 0, 0), (1, 1))
    cfg = tile_model.conv_config(batch * oh * ow, o, c * r * r, spec, _ACT_BYTES[dtype], bits)
    key = compiled_resources.key(spec.cc, tile_model.conv_kernel(bits), 8 * _ACT_BYTES[dtype], _ACT_BYTES[dtype], cfg)
    quant = {}
    if bits is not None:
        kp, g = padded_layout(c * r * r, 128)
        quant = dict(bits=bits, Kp=kp, group_size=g, scale_dtype=torch.float16)
    transform, conv = im2win_conv2d_launches((batch, hw, hw, c), (o, c, r, r), (stride, stride), (0, 0, 0, 0), (1, 1), 1, dtype,
                                             True, dtype, **quant, **cfg.kernel_args())[:2]
    return transform, conv, key


def launches_for(spec) -> list[tuple[str, object, int | None, str | None]]:
    """(what, launch, weight pointer that must be wide or None, compiled_resources key or None) for one card."""
    out = []
    add = lambda what, launch, wide, key=None: out.append((what, launch, wide if aligned(launch) else None, key))  # noqa: E731
    for n, k in LOWBIT_SHAPES:
        for m in LOWBIT_ROWS:
            for bits in range(1, 9):
                # bf16 and fp32 activations (fp32 with fp32 scales) compile the same kernel bodies
                # with other conversions: at 3 bits only, to keep the check's compile count down
                for dtype, scale in [(torch.float16, torch.float16)] + \
                        ([(torch.bfloat16, torch.float16), (torch.float32, torch.float32)] if bits == 3 else []):
                    add(f"lowbit m={m} {n}x{k} {bits}-bit {str(dtype)[6:]}", *_lowbit(spec, m, n, k, bits, dtype, scale))
        for m in (1, 16, 256):
            for dtype in (torch.float16, torch.bfloat16):
                add(f"dense m={m} {n}x{k} {str(dtype)[6:]}", *_dense(spec, m, n, k, dtype))
    for s in DENSE_SQUARES:
        for dtype in (torch.float16, torch.bfloat16) + ((torch.float32,) if s == 4096 else ()):
            add(f"dense {s}^3 {str(dtype)[6:]}", *_dense(spec, s, s, s, dtype))
    for batch in (1, 32):
        for layer in PAPER_LAYERS:
            for dtype in (torch.float16, torch.float32):
                for bits in (None, 3):  # dense filters, 3-bit filters
                    transform, conv, key = _conv(spec, batch, layer, dtype, bits)
                    what = f"im2win b={batch} {layer} {str(dtype)[6:]} {'3-bit' if bits else 'dense'}"
                    add(what + " transform", transform, None)
                    add(what, conv, None, key)
    for bits in range(1, 9):
        for scale in (torch.float16, torch.float32):
            # its planes are not held to 16-byte loads: the fp32 output it writes is 32/bits times
            # the bytes it reads, and a thread's 16 bytes of one plane would be 128 outputs in registers
            add(f"bcq_dequantize 4096x4096 {bits}-bit", bcq_dequantize_launch(4096, 4096, bits, 4096, 128, scale), None)
    return out


def cases(archs=DEFAULT_ARCHS, specializations: bool = False) -> list[Case]:
    """Every distinct binary the listed archs' cards would launch on the benchmark shapes."""
    merged: dict[tuple, Case] = {}
    for arch in archs:
        if arch not in ARCH_CARDS:
            raise ValueError(f"archs: expected some of {sorted(ARCH_CARDS)}, got {arch}")
        for card in ARCH_CARDS[arch]:
            for what, launch, wide, key in launches_for(tile_model.GPU_SPECS[card]):
                case = merged.setdefault(binary_key(arch, launch, specializations), Case(arch, launch, wide, key))
                case.users.append(f"{card}: {what}")
    return list(merged.values())
