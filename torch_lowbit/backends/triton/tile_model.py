"""Tile-size model for the Triton GEMM kernels: predict a config's runtime from (M, N, K) and
the GPU's specs, and pick the fastest, instead of autotuning every new shape.

The idea follows the GEMM-on-Ada study (arXiv 2411.16954): runtime is set by how the tiles fill
the GPU (waves over the SMs), by the tensor-core time per tile (smaller warp tiles re-read
shared memory more often, so run below peak), by the bytes each tile pulls through L2 and the
bytes the whole GEMM pulls from DRAM, and, for low-bit weights, by the ALU work of decoding the
bit-planes. It is analytic: no measurements are shipped with it. `benchmarks/gpu_kernels.py`
times every candidate on a real GPU and reports how far the predicted config lands from the best
measured one (`python benchmarks/gpu_kernels.py --only tiles`). Two measured inputs refine it
where present: the compiler's shared-memory/register/spill numbers (compiled_resources.py, from
the ahead-of-time compile check), and a random-forest correction fitted to a GPU's own sweep
(tile_forest.py, `python benchmarks/fit_tile_forest.py`).

    >>> from torch_lowbit.backends.triton.tile_model import best_config, GPU_SPECS
    >>> cfg = best_config(4096, 4096, 4096, GPU_SPECS["H100"])
    >>> cfg.block_m >= 64 and cfg.block_n >= 64
    True
    >>> best_config(1, 4096, 4096, GPU_SPECS["H100"], weight_bits=3, group_size=128).split_k > 1
    True
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from functools import lru_cache

from torch_lowbit.backends.triton import compiled_resources, tile_forest


@dataclasses.dataclass(frozen=True)
class GpuSpec:
    """What the model needs to know about a GPU (dense, non-sparse peak numbers), and the launch
    limits of its compute capability that the compile check holds compiled kernels to."""

    name: str
    cc: tuple[int, int]  # compute capability: the sm_XY the kernels are compiled for
    sms: int
    smem_per_sm: int  # bytes of shared memory per SM
    smem_per_block: int  # the most one block may opt into (static + dynamic)
    tensor_tflops: float  # fp16/bf16 tensor-core peak with fp32 accumulation
    fp32_tflops: float  # CUDA-core FMA peak (decode work runs here)
    dram_gbs: float
    l2_bytes: int
    l2_gbs: float
    max_warps_per_sm: int
    max_blocks_per_sm: int
    regs_per_sm: int = 65536
    max_regs_per_thread: int = 255
    max_threads_per_block: int = 1024
    source: str = ""


# Where the numbers come from. Per-capability limits (shared memory per SM and per block, warps and
# blocks per SM, registers) are the CUDA C++ Programming Guide's "Technical Specifications per
# Compute Capability" table. Peaks are the vendor datasheets' dense figures; L2 bandwidth has no
# vendor figure and is an estimate (~2.5x DRAM), the number to replace first with a measurement.
_CC_LIMITS = {
    (8, 0): dict(smem_per_sm=164 * 1024, smem_per_block=163 * 1024, max_warps_per_sm=64, max_blocks_per_sm=32),
    (8, 6): dict(smem_per_sm=100 * 1024, smem_per_block=99 * 1024, max_warps_per_sm=48, max_blocks_per_sm=16),
    (8, 9): dict(smem_per_sm=100 * 1024, smem_per_block=99 * 1024, max_warps_per_sm=48, max_blocks_per_sm=24),
    (9, 0): dict(smem_per_sm=228 * 1024, smem_per_block=227 * 1024, max_warps_per_sm=64, max_blocks_per_sm=32),
}


def _spec(name, cc, sms, tensor_tflops, fp32_tflops, dram_gbs, l2_mib, l2_gbs, source) -> GpuSpec:
    return GpuSpec(name, cc, sms, tensor_tflops=tensor_tflops, fp32_tflops=fp32_tflops, dram_gbs=dram_gbs,
                   l2_bytes=l2_mib * 2**20, l2_gbs=l2_gbs, source=source, **_CC_LIMITS[cc])


GPU_SPECS = {
    "A100": _spec("A100", (8, 0), 108, 312.0, 19.5, 2039.0, 40, 5100.0, "NVIDIA A100 datasheet, SXM4 80GB; SM count: A100 whitepaper"),
    "A10": _spec("A10", (8, 6), 72, 125.0, 31.2, 600.0, 6, 1500.0, "NVIDIA A10 datasheet; Ampere GA102 whitepaper"),
    "L4": _spec("L4", (8, 9), 58, 121.0, 30.3, 300.0, 48, 1200.0, "NVIDIA L4 datasheet (242 TFLOPS fp16 is with sparsity); Ada whitepaper"),
    "RTX 4090": _spec("RTX 4090", (8, 9), 128, 165.0, 82.6, 1008.0, 72, 3000.0,
                      "Ada Lovelace whitepaper, RTX 4090 (fp16 tensor with fp32 accumulate, dense)"),
    "H100": _spec("H100", (9, 0), 132, 989.0, 67.0, 3350.0, 50, 9000.0, "NVIDIA H100 datasheet, SXM5; Hopper whitepaper"),
    "H100 PCIe": _spec("H100 PCIe", (9, 0), 114, 756.0, 51.0, 2000.0, 50, 6500.0, "NVIDIA H100 datasheet, PCIe"),
    "H200": _spec("H200", (9, 0), 132, 989.0, 67.0, 4800.0, 50, 9000.0, "NVIDIA H200 datasheet, SXM (HBM3e 4.8 TB/s)"),
}
# Per-SM peaks by compute capability, for cards not in the table (scaled by their SM count).
_PER_SM_BY_CC = {(8, 0): "A100", (8, 6): "A10", (8, 7): "A10", (8, 9): "L4", (9, 0): "H100"}


@dataclasses.dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    split_k: int = 1
    group_m: int = 8

    def kernel_args(self) -> dict:
        return dict(block_m=self.block_m, block_n=self.block_n, block_k=self.block_k,
                    num_warps=self.num_warps, num_stages=self.num_stages)


def spec_for_device(device=None) -> GpuSpec:
    """The spec of a CUDA device: the table entry its name matches, else one derived from its SM
    count, shared memory and L2 size with per-SM peaks of its compute capability. Without CUDA
    (CI, the interpreter) the H100's spec, so the model still gives sensible tiles."""
    import torch

    if not torch.cuda.is_available():
        return GPU_SPECS["H100"]
    props = torch.cuda.get_device_properties(device)
    name = props.name
    for key in sorted(GPU_SPECS, key=len, reverse=True):
        if key.replace(" ", "").lower() in name.replace(" ", "").lower():
            if key == "H100" and "pcie" in name.lower():
                return GPU_SPECS["H100 PCIe"]
            return GPU_SPECS[key]
    base = GPU_SPECS[_PER_SM_BY_CC.get((props.major, props.minor), "A100")]
    scale = props.multi_processor_count / base.sms
    smem_block = getattr(props, "shared_memory_per_block_optin", base.smem_per_block)
    smem_sm = getattr(props, "shared_memory_per_multiprocessor", base.smem_per_sm)
    return dataclasses.replace(
        base, name=name, cc=(props.major, props.minor), sms=props.multi_processor_count, smem_per_sm=smem_sm, smem_per_block=smem_block,
        tensor_tflops=base.tensor_tflops * scale, fp32_tflops=base.fp32_tflops * scale,
        l2_bytes=getattr(props, "L2_cache_size", base.l2_bytes))


def _warp_tile(cfg: TileConfig) -> tuple[float, float]:
    # Triton splits the block tile over warps along M first, while M still has >= 16 rows a warp.
    wm = max(cfg.block_m // 16, 1)
    warps_m = min(cfg.num_warps, wm)
    return cfg.block_m / warps_m, cfg.block_n / (cfg.num_warps // warps_m)


def _regs_per_thread(cfg: TileConfig, weight_bits: int) -> int:
    """Rough register count: fp32 accumulators, operand fragments, and for low-bit weights the
    decoded fp32 weight tile, which lives in registers before tl.dot."""
    threads = 32 * cfg.num_warps
    acc = cfg.block_m * cfg.block_n // threads
    operands = (cfg.block_m + cfg.block_n) * cfg.block_k // (2 * threads)
    decoded = cfg.block_k * cfg.block_n // threads if weight_bits < 16 else 0
    return 24 + acc + operands + decoded


def shared_bytes(cfg: TileConfig, act_bytes: int, weight_bits: int) -> int:
    """Shared memory of the software pipeline: num_stages copies of the A tile and the (packed)
    weight tile."""
    a = cfg.block_m * cfg.block_k * act_bytes
    w = cfg.block_k * cfg.block_n * weight_bits / 8
    return int(cfg.num_stages * (a + w))


def _kernel(kernel: str | None, weight_bits: int) -> str:
    return kernel or ("bcq_gemm" if weight_bits < 16 else "dense_gemm")


def compiled(cfg: TileConfig, spec: GpuSpec, act_bytes: int, weight_bits: int, kernel: str | None = None) -> dict | None:
    """The compiler's shared memory / registers / spills for this config (compiled_resources.py), if known."""
    return compiled_resources.lookup(spec.cc, _kernel(kernel, weight_bits), weight_bits, act_bytes, cfg)


def block_registers(regs_per_thread: int, threads: int) -> int:
    """Registers a block is allocated: per warp, in units of 256 (8 per thread)."""
    return -(-threads // 32) * 32 * -(-regs_per_thread // 8) * 8


def feasible(cfg: TileConfig, spec: GpuSpec, act_bytes: int = 2, weight_bits: int = 16, group_size: int | None = None,
             kernel: str | None = None) -> bool:
    """Whether the config can launch without spilling: from the compiled binary's numbers when
    the compile check recorded them, else from the estimates."""
    return _feasible(cfg, spec, act_bytes, weight_bits, group_size, compiled(cfg, spec, act_bytes, weight_bits, kernel))


def _feasible(cfg: TileConfig, spec: GpuSpec, act_bytes: int, weight_bits: int, group_size: int | None, known: dict | None) -> bool:
    if known is not None:
        if (known["spills"] or known["shared"] > spec.smem_per_block
                or block_registers(known["registers"], 32 * cfg.num_warps) > spec.regs_per_sm):
            return False
    elif shared_bytes(cfg, act_bytes, weight_bits) > spec.smem_per_block:
        return False
    elif _regs_per_thread(cfg, weight_bits) > 192:  # would spill
        return False
    if cfg.block_m * cfg.block_n < 32 * cfg.num_warps:  # fewer outputs than threads
        return False
    if weight_bits >= 16 and cfg.block_k * cfg.block_n * weight_bits // 8 < 16 * 32 * cfg.num_warps:
        return False  # a thread's share of the dense weight tile is under one 16-byte load
    # (Low-bit tiles are not held to it: 16 bytes of one plane per thread is 128 decoded weights
    # in registers before tl.dot, which spills; the one-row GEMV is where the stream must be wide.)
    if weight_bits < 16 and group_size is not None and group_size % cfg.block_k and cfg.block_k % group_size:
        return False
    return True


def predict_ms(m: int, n: int, k: int, cfg: TileConfig, spec: GpuSpec, act_bytes: int = 2,
               weight_bits: int = 16, group_size: int | None = None, kernel: str | None = None) -> float:
    """Predicted runtime in ms of y[m, n] = x[m, k] @ W[n, k]^T with `cfg` (inf if infeasible)."""
    known = compiled(cfg, spec, act_bytes, weight_bits, kernel)
    if not _feasible(cfg, spec, act_bytes, weight_bits, group_size, known):
        return math.inf
    tiles = math.ceil(m / cfg.block_m) * math.ceil(n / cfg.block_n)
    programs = tiles * cfg.split_k
    k_iters = math.ceil(math.ceil(k / cfg.split_k) / cfg.block_k)
    # Occupancy: blocks resident per SM, bounded by shared memory, registers and warp slots.
    smem = max(known["shared"] if known else shared_bytes(cfg, act_bytes, weight_bits), 1)
    regs_per_thread = min(255, known["registers"] if known else _regs_per_thread(cfg, weight_bits))
    resident = min(spec.smem_per_sm // smem, spec.regs_per_sm // (regs_per_thread * 32 * cfg.num_warps), spec.max_warps_per_sm // cfg.num_warps, spec.max_blocks_per_sm)
    resident = max(resident, 1)
    per_sm = math.ceil(programs / spec.sms)  # the busiest SM's share (wave quantization)
    # Latency hiding: ~8 resident warps with a 3-stage pipeline reach the SM's peak.
    active_warps = min(resident, per_sm) * cfg.num_warps * min(cfg.num_stages, 3) / 3
    busy = min(1.0, active_warps / 8)
    # Tensor-core time per program: warp tiles under 64x64 re-read shared memory more per flop.
    wm, wn = _warp_tile(cfg)
    mma_eff = min(1.0, (2 / 64) / (1 / max(wm, 1) + 1 / max(wn, 1)))
    flops_per_sm = spec.tensor_tflops * 1e12 / spec.sms
    tile_flops = 2.0 * cfg.block_m * cfg.block_n * cfg.block_k
    t_mma = tile_flops / (flops_per_sm * mma_eff)
    # Decoding low-bit weights: ~(2 + 2 * bits) ALU ops per weight element, on the CUDA cores.
    t_decode = 0.0
    if weight_bits < 16:
        t_decode = cfg.block_k * cfg.block_n * (2 + 2 * weight_bits) / (spec.fp32_tflops * 1e12 / 2 / spec.sms)
    # L2 -> SM bytes per K-step.
    step_bytes = cfg.block_m * cfg.block_k * act_bytes + cfg.block_k * cfg.block_n * weight_bits / 8
    t_l2 = step_bytes / (spec.l2_gbs * 1e9 / spec.sms)
    t_program = k_iters * max(t_mma + t_decode, t_l2) / busy
    t_sm = per_sm * t_program
    # DRAM: the weight once, the activations once per column of tiles that misses L2, the output.
    a_bytes = m * k * act_bytes
    a_reads = 1 if a_bytes * 2 < spec.l2_bytes else math.ceil(n / cfg.block_n) / cfg.group_m
    out_bytes = m * n * (4 * cfg.split_k if cfg.split_k > 1 else act_bytes)
    dram = n * k * weight_bits / 8 + a_bytes * max(a_reads, 1) + out_bytes
    t_dram = dram / (spec.dram_gbs * 1e9)
    launch = 4e-6 + (4e-6 + 2 * m * n * 4 * cfg.split_k / (spec.dram_gbs * 1e9) if cfg.split_k > 1 else 0.0)
    return (max(t_sm, t_dram) + launch) * 1e3


def candidates(m: int, k: int, weight_bits: int = 16, group_size: int | None = None) -> list[TileConfig]:
    """The config space the model searches (and the benchmark sweeps)."""
    small = m <= 32
    bms = [16, 32] if small else [32, 64, 128, 256]
    bns = [32, 64, 128, 256]
    bks = [32, 64, 128, 256] if weight_bits < 16 else [32, 64, 128]
    warps = [2, 4, 8] if small else [4, 8]
    stages = [2, 3, 4, 5]
    splits = [1, 2, 4, 8, 16] if small and weight_bits < 16 else [1]  # split-K: the low-bit kernel only
    out = []
    for bm, bn, bk, w, s, sk in itertools.product(bms, bns, bks, warps, stages, splits):
        if bm >= 2 * max(m, 16) and bm > 16:
            continue  # never more than twice the rows there are
        if bk * sk > max(k, bk):
            continue  # splits that would leave a program no K-step
        out.append(TileConfig(bm, bn, bk, w, s, sk))
    return out


@lru_cache(maxsize=4096)
def best_config(m: int, n: int, k: int, spec: GpuSpec, act_bytes: int = 2, weight_bits: int = 16,
                group_size: int | None = None, kernel: str | None = None) -> TileConfig:
    """The candidate with the lowest predicted runtime.

    Raises ValueError for non-positive sizes."""
    for name, v in (("m", m), ("n", n), ("k", k)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    ranked = rank_configs(m, n, k, spec, act_bytes, weight_bits, group_size, kernel)
    if not ranked:
        raise ValueError(f"no feasible tile config for m={m}, n={n}, k={k} on {spec.name}")
    return ranked[0][1]


def shape_class(m: int) -> int:
    """Row counts share a config per power of two (the tile model is consulted per class)."""
    return 1 << max(m - 1, 0).bit_length()


@lru_cache(maxsize=4096)
def default_config(m: int, n: int, k: int, spec: GpuSpec, act_bytes: int = 2, weight_bits: int = 16,
                   group_size: int | None = None, kernel: str | None = None) -> TileConfig:
    """The config the Triton ops launch for this GEMM without autotuning: the model's best for m's
    shape class. (The compile check compiles exactly these.)"""
    ranked = rank_configs(shape_class(m), n, k, spec, act_bytes, weight_bits, group_size, kernel)
    if not ranked:
        raise RuntimeError(f"no feasible Triton tile config for m={m}, n={n}, k={k} on {spec.name}")
    return ranked[0][1]


def conv_kernel(bits: int | None) -> str:
    """The compiled-resources name of the im2win kernel for dense (None) or `bits`-bit filters."""
    return "im2win" if bits is None else f"im2win_bcq{bits}"


def conv_config(rows: int, out_per_group: int, reduction: int, spec: GpuSpec, act_bytes: int = 2,
                bits: int | None = None) -> TileConfig:
    """Tiles of the implicit-GEMM convolution: rows = output pixels, columns = one group's output
    channels, reduction = R * S * C/groups; sized like a dense GEMM (no split-K), dense or
    `bits`-bit filters (decoded in registers, so the estimates are the dense ones)."""
    return default_config(max(rows, 1), max(out_per_group, 1), max(reduction, 1), spec, act_bytes, 8 * act_bytes,
                          kernel=conv_kernel(bits))


@lru_cache(maxsize=4096)
def gemv_config(n: int, k: int, spec: GpuSpec, group_size: int) -> TileConfig:
    """Tiles of the one-row low-bit GEMV (triton_kernels/bcq_gemv.py), chosen by rule rather than
    by the GEMM model: the GEMV is bound by its weight stream and the unpacking ALU work, not by
    tensor cores.

    - block_k: the largest power of two up to 256 dividing the group (one group per K-step);
    - block_n x block_k / 8 bytes per plane per step >= 16 bytes for each thread, so every thread
      loads whole 16-byte words (the compile check asserts 128-bit weight loads): block_n =
      4096 * warps / block_k, with 4, 2 or 1 warps, whichever keeps block_n <= 256;
    - split-K until the programs fill the SMs four times over (the partial sums cost 4 bytes per
      output per split, next to bits/8 bytes per weight)."""
    block_k = next(b for b in (256, 128, 64, 32, 16, 8) if group_size % b == 0)
    warps, block_n = next(((w, 4096 * w // block_k) for w in (4, 2, 1) if 4096 * w // block_k <= 256), (1, 256))
    k_steps = math.ceil(k / block_k)
    split = 1
    while split < 16 and math.ceil(n / block_n) * split < 4 * spec.sms and split * 2 <= k_steps:
        split *= 2
    return TileConfig(1, block_n, block_k, warps, 3, split)


def rank_configs(m: int, n: int, k: int, spec: GpuSpec, act_bytes: int = 2, weight_bits: int = 16,
                 group_size: int | None = None, kernel: str | None = None) -> list[tuple[float, TileConfig]]:
    """(predicted ms, config) for every feasible candidate, fastest first (ties: fewer splits,
    then smaller shared memory)."""
    scored = []
    for cfg in candidates(m, k, weight_bits, group_size):
        t = predict_ms(m, n, k, cfg, spec, act_bytes, weight_bits, group_size, kernel)
        if math.isfinite(t):
            scored.append((t, cfg.split_k, shared_bytes(cfg, act_bytes, weight_bits), cfg))
    forest = tile_forest.for_gpu(spec.name)
    if forest is not None and scored:  # measured on this GPU: correct the analytic times
        correction = forest.predict([tile_forest.features(m, n, k, c, weight_bits, t) for t, _, _, c in scored])
        scored = [(t * math.exp(float(r)), *rest) for (t, *rest), r in zip(scored, correction)]
    scored.sort(key=lambda s: s[:3])
    return [(t, cfg) for t, _, _, cfg in scored]
