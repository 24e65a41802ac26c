"""Which kernel family runs an op: the explicit backend policy.

backend="auto" picks the compiled kernels on CPU tensors and, on CUDA tensors, CUDA C++ or Triton
by op and row count from measurements (policy.cuda_family); "cpu", "cuda", "triton" and
"reference" force one. A backend that
cannot run the call raises RuntimeError saying why: there is no silent substitution.
"""
from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "cpu", "cuda", "triton", "reference")


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def cuda_kernels_built() -> bool:
    from torch_lowbit._ext import has_cuda_kernels

    return has_cuda_kernels()


def resolve(backend: str, device: torch.device, op: str | None = None, rows: int = 0) -> str:
    """Return the concrete backend ("native", "triton" or "reference") for a call of `op` with
    `rows` activation rows on `device`.

    "native" means the compiled C++/CUDA op, dispatched by torch on the tensor's device.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    kind = device.type
    if backend == "reference":
        return "reference"
    if backend == "auto":
        if kind == "cuda" and not cuda_kernels_built():
            if triton_available():
                return "triton"
            raise RuntimeError("backend='auto': torch_lowbit was built without CUDA kernels and Triton is not installed")
        if kind not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"backend='auto': no torch_lowbit kernel for device {device}; use backend='reference'")
        if kind == "cuda":
            from torch_lowbit import policy

            return policy.cuda_family(op, rows, device, triton_available())
        return "native"
    if backend == "cpu":
        if kind not in ("cpu", "meta"):
            raise RuntimeError(f"backend='cpu' needs CPU tensors, got tensors on {device}")
        return "native"
    if backend == "cuda":
        if kind not in ("cuda", "meta"):
            raise RuntimeError(f"backend='cuda' needs CUDA tensors, got tensors on {device}")
        if not cuda_kernels_built():
            raise RuntimeError("backend='cuda': torch_lowbit was built without CUDA kernels (rebuild with nvcc and a CUDA torch)")
        return "native"
    # triton
    if not triton_available():
        raise RuntimeError("backend='triton': the triton package is not installed")
    if kind == "cpu" and not triton_interpret():
        raise RuntimeError("backend='triton' on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
    if kind not in ("cpu", "cuda", "meta"):
        raise RuntimeError(f"backend='triton': no Triton kernel for device {device}")
    return "triton"
