"""Loads the compiled extension torch_lowbit._C (which registers the C++ ops)."""
from __future__ import annotations

import functools
from typing import Any

_BUILD_HINT = (
    "torch_lowbit's compiled extension (torch_lowbit._C) is not built or failed to load. "
    "Build it from the source tree with:\n"
    "    pip install --no-build-isolation -e .\n"
    "(add TORCH_LOWBIT_CPU_ONLY=1 for a quick CPU-only build). Import error: {err}"
)


@functools.lru_cache(maxsize=None)
def load() -> Any:
    """Import torch_lowbit._C, raising ImportError with build instructions if it is missing."""
    try:
        from torch_lowbit import _C  # noqa: F401  (importing registers the ops)
    except ImportError as err:
        raise ImportError(_BUILD_HINT.format(err=err)) from err
    return _C


def build_info() -> dict:
    """What the extension was compiled with and which CPU path runs: {'cuda': bool,
    'cuda_archs': str, 'cpu_features': str, 'cpu_isa_best': str, 'cpu_isa': str}."""
    return dict(load().build_info())


@functools.lru_cache(maxsize=None)
def has_cuda_kernels() -> bool:
    return bool(build_info()["cuda"])  # fixed at build time: asked once per process
