"""Build torch_lowbit._C: the CPU kernels always, the CUDA kernels when torch has CUDA and nvcc
is found.

Environment:
  TORCH_LOWBIT_CPU_ONLY=1    skip the CUDA sources (a quick CPU-only build)
  TORCH_CUDA_ARCH_LIST       CUDA archs, default "8.0;8.6;8.9;9.0" (A100, RTX 30xx/A10, Ada, Hopper)
  MAX_JOBS                   parallel compile jobs (ninja)

Install without build isolation so the build uses the torch you already have:
  pip install --no-build-isolation -e .
"""
import glob
import os
import sysconfig

from setuptools import setup

import torch
from torch.utils import cpp_extension

DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0"
ROOT = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    if os.environ.get("TORCH_LOWBIT_CPU_ONLY", "0") not in ("", "0"):
        return False
    if torch.version.cuda is None:
        print("torch_lowbit: torch has no CUDA, building the CPU kernels only")
        return False
    if cpp_extension.CUDA_HOME is None:
        print("torch_lowbit: nvcc not found (set CUDA_HOME), building the CPU kernels only")
        return False
    return True


def cuda_include_dirs() -> list[str]:
    # pip's CUDA 13 wheels keep cublas/cusparse headers here; torch's CUDA headers include them.
    site = sysconfig.get_paths()["purelib"]
    return [d for d in glob.glob(os.path.join(site, "nvidia", "cu*", "include")) if os.path.isdir(d)]


def extension():
    rel = lambda pattern: sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    cxx = ["-O3", "-fopenmp"]  # torch adds the C++ standard it needs
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        archs = os.environ["TORCH_CUDA_ARCH_LIST"]
        print(f"torch_lowbit: building CUDA kernels for {archs}")
        defines = ["-DTORCH_LOWBIT_WITH_CUDA", f'-DTORCH_LOWBIT_CUDA_ARCHS="{archs}"']
        return cpp_extension.CUDAExtension(
            "torch_lowbit._C",
            sources + rel("csrc/cuda/*.cpp") + rel("csrc/cuda/*.cu"),
            include_dirs=cuda_include_dirs(),
            extra_compile_args={"cxx": cxx + defines, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CppExtension(
        "torch_lowbit._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"]
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
