"""Which implementation family runs an op — one question, answered here only.

Families: "cpu" and "cuda" (the compiled extension; torch's dispatcher then picks the kernel
by the tensors' device), "triton" (the `triton_` ops) and "reference" (plain PyTorch).
backend="auto" takes the compiled kernels on CPU tensors and, on CUDA tensors, CUDA C++ or
Triton by op and row count from measurements (`measured_gpu_policies`); any family name forces
that family. A family that cannot run the call raises RuntimeError saying why: there is no
silent substitution.

Inside a family the shape- and ISA-dependent choice (LUT vs tiled, AMX, tile sizes) is the
kernel selector's, next to the kernels: csrc/cpu/kernel_selector.h, csrc/cuda/bcq_linear/,
torch_lowbit/backends/triton/tile_model.py.

CUDA measurements: `python benchmarks/gpu_kernels.py` writes benchmarks/results/gpu_policy.json
(per GPU name and op: the faster family up to each row count); files copied into
torch_lowbit/data/gpu_policy/ ship with the package. For a GPU without measurements the default
is Triton when it is installed (its kernels use tensor cores and the tile model), else CUDA C++.

    >>> import torch
    >>> from torch_lowbit import dispatch
    >>> dispatch.family("auto", torch.device("cpu"), "bcq_linear", rows=1)
    'cpu'
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources

import torch

from torch_lowbit import reference
from torch_lowbit._env import env_flag
from torch_lowbit.library import TRITON_PREFIX

FAMILIES = ("cpu", "cuda", "triton", "reference")
BACKENDS = ("auto",) + FAMILIES


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpret() -> bool:
    return env_flag("TRITON_INTERPRET")


def cuda_kernels_built() -> bool:
    from torch_lowbit.backends.native import has_cuda_kernels

    return has_cuda_kernels()


def family(backend: str, device: torch.device, op: str, rows: int = 0) -> str:
    """The family ("cpu", "cuda", "triton" or "reference") that runs `op` with `rows` activation
    rows on `device` under `backend`."""
    kind = device.type
    if backend == "auto":
        if kind == "cpu" or kind == "meta":
            return "cpu"
        if kind == "cuda":
            if not cuda_kernels_built():
                if triton_available():
                    return "triton"
                raise RuntimeError("backend='auto': torch_lowbit was built without CUDA kernels and Triton is not installed")
            return cuda_family(op, rows, device, triton_available())
        raise RuntimeError(f"backend='auto': no torch_lowbit kernel for device {device}; use backend='reference'")
    if backend == "reference":
        return "reference"
    if backend == "cpu":
        if kind not in ("cpu", "meta"):
            raise RuntimeError(f"backend='cpu' needs CPU tensors, got tensors on {device}")
        return "cpu"
    if backend == "cuda":
        if kind not in ("cuda", "meta"):
            raise RuntimeError(f"backend='cuda' needs CUDA tensors, got tensors on {device}")
        if not cuda_kernels_built():
            raise RuntimeError("backend='cuda': torch_lowbit was built without CUDA kernels (rebuild with nvcc and a CUDA torch)")
        return "cuda"
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton': the triton package is not installed")
        if kind == "cpu" and not triton_interpret():
            raise RuntimeError("backend='triton' on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
        if kind not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"backend='triton': no Triton kernel for device {device}")
        return "triton"
    raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")


@functools.lru_cache(maxsize=None)
def implementation(fam: str, op: str) -> Callable:
    """The callable of `op` in family `fam` (the op's default overload: the cheapest to call)."""
    if fam == "reference":
        return getattr(reference, op)
    if fam == "triton":
        import torch_lowbit.backends.triton.ops  # noqa: F401  (registers the Triton kernels)

        return getattr(torch.ops.torch_lowbit, TRITON_PREFIX + op).default
    return getattr(torch.ops.torch_lowbit, op).default


def resolve(backend: str, device: torch.device, op: str, rows: int = 0) -> Callable:
    """The callable that runs `op` for this call: family() then implementation()."""
    return implementation(family(backend, device, op, rows), op)


@functools.lru_cache(maxsize=None)
def measured_gpu_policies() -> dict:
    """{gpu name: {op: [[max_rows, "native" | "triton"], ...]}} from the shipped JSON files."""
    policies: dict = {}
    folder = resources.files("torch_lowbit") / "data" / "gpu_policy"
    if not folder.is_dir():
        return policies
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            policies.setdefault(data["device"], {}).update(data["ops"])
    return policies


def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if torch.cuda.is_available() else ""


def cuda_family(op: str, rows: int, device: torch.device, triton_ok: bool) -> str:
    """"cuda" (CUDA C++) or "triton" for `op` with `rows` activation rows on the CUDA `device`.
    The measured tables name CUDA C++ "native" (benchmarks/gpu_kernels.py writes them)."""
    if not triton_ok:
        return "cuda"
    table = measured_gpu_policies().get(_gpu_name(device), {}).get(op, [])
    for max_rows, fam in table:
        if rows <= max_rows:
            return "cuda" if fam == "native" else fam
    return "triton"
