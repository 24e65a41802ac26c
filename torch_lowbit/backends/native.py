"""The compiled extension torch_lowbit._C: importing it registers the CPU and CUDA kernels of
the ops (TORCH_LIBRARY_IMPL in csrc/cpu/<op>/binding.cpp and csrc/cuda/<op>/binding.cpp)."""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from types import ModuleType

_BUILD_HINT = (
    "torch_lowbit's compiled extension (torch_lowbit._C) is not built or failed to load. "
    "Build it from the source tree with:\n"
    "    pip install --no-build-isolation -e .\n"
    "(add TORCH_LOWBIT_CPU_ONLY=1 for a quick CPU-only build). Import error: {err}"
)


@functools.lru_cache(maxsize=None)
def load() -> ModuleType:
    """Import torch_lowbit._C, raising ImportError with build instructions if it is missing.

    TORCH_LOWBIT_EXTENSION=/path/to/_C.so loads that build instead (the sanitizer build of
    .ci/sanitizers, kept apart from the installed one)."""
    path = os.environ.get("TORCH_LOWBIT_EXTENSION")
    if path:
        return _load_from(path)
    try:
        return importlib.import_module("torch_lowbit._C")
    except ImportError as err:
        raise ImportError(_BUILD_HINT.format(err=err)) from err


def _load_from(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise ImportError(f"TORCH_LOWBIT_EXTENSION: {path} is not a file (expected a built torch_lowbit _C extension)")
    spec = importlib.util.spec_from_file_location("torch_lowbit._C", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["torch_lowbit._C"] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        del sys.modules["torch_lowbit._C"]
        raise ImportError(f"TORCH_LOWBIT_EXTENSION: {path} failed to load ({err})") from err
    return module


def build_info() -> dict:
    """What the extension was compiled with and which CPU path runs: {'cuda': bool,
    'cuda_archs': str, 'cpu_features': str, 'cpu_isa_best': str, 'cpu_isa': str}."""
    return dict(load().build_info())


@functools.lru_cache(maxsize=None)
def has_cuda_kernels() -> bool:
    return bool(build_info()["cuda"])  # fixed at build time: asked once per process


# The CPU SIMD paths in order: a CPU that runs one runs every path before it ("amx" is AVX-512
# plus the AMX tiled GEMM for bf16).
CPU_ISA_ORDER = ("portable", "avx2", "avx512", "amx")


def runnable_cpu_isas() -> list[str]:
    """The SIMD paths set_cpu_isa() accepts on this CPU, from "portable" up to the best."""
    best = build_info()["cpu_isa_best"]
    return list(CPU_ISA_ORDER[: CPU_ISA_ORDER.index(best) + 1])


def cpu_isa() -> str:
    """The SIMD path the CPU kernels take now ("portable", "avx2", "avx512" or "amx")."""
    return load().cpu_isa()


def cpu_lut_tables() -> str:
    """The LUT-GEMM tables the CPU SIMD paths use: "int8" (default) or "exact" (fp32)."""
    return load().cpu_lut_tables()


def set_cpu_lut_tables(name: str) -> None:
    """Choose the CPU LUT-GEMM tables for the process: "int8" (vpshufb lookups, ~0.6-0.8%
    relative output error, about what llama.cpp's Q8_0 activations cost) or "exact" (fp32,
    vpermps). TORCH_LOWBIT_LUT_TABLES=exact sets the default at load."""
    load().set_cpu_lut_tables(name)


def cpu_lut_lookup() -> str:
    """The int8 LUT kernel of the AVX-512 paths: "vpermb" (vpermb + vpdpbusd, where the CPU has
    AVX-512 VBMI and VNNI) or "vpshufb" (zmm vpshufb, every AVX-512 CPU). AVX2 is always vpshufb."""
    return load().cpu_lut_lookup()


def set_cpu_lut_lookup(name: str) -> None:
    """Choose the AVX-512 int8 LUT kernel for the process ("vpermb" or "vpshufb"; tests and
    benchmarks); ValueError for "vpermb" on a CPU without VBMI and VNNI."""
    load().set_cpu_lut_lookup(name)


def cpu_int8_gemm() -> bool:
    """Whether bcq_linear may run the int8-activation GEMM (csrc/cpu/int8_gemm/) for many rows of
    a uniform-grid weight. On by default; "exact" tables keep it off too."""
    return load().cpu_int8_gemm()


def set_cpu_int8_gemm(on: bool) -> None:
    """Turn the int8-activation GEMM on or off for the process (tests and benchmarks compare the
    routes); off, many rows take the LUT or the expand + sgemm route as before it existed."""
    load().set_cpu_int8_gemm(bool(on))


def cpu_linear_kernel(rows: int, bits: int, n: int, k: int, bf16: bool = False, uniform: bool = True) -> str:
    """The CPU kernel bcq_linear runs now for `rows` x [n, k] at `bits` ("lut", "dense",
    "tiled_amx" or "int8_gemm"); `uniform`: the weight's grids are uniform (rtn / mse)."""
    return load().cpu_linear_kernel(rows, bits, n, k, bf16, uniform)


def set_cpu_isa(name: str) -> None:
    """Force a SIMD path the CPU supports (tests and benchmarks); ValueError if it does not."""
    load().set_cpu_isa(name)
