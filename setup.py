"""Build torch_lowbit._C: the CPU kernels always, the CUDA kernels when torch has CUDA and nvcc
is found.

Environment:
  TORCH_LOWBIT_CPU_ONLY=1    skip the CUDA sources (a quick CPU-only build)
  TORCH_LOWBIT_SANITIZE=1    CPU-only build with AddressSanitizer + UndefinedBehaviorSanitizer
                             (-O1 -g); run it as .ci/sanitizers does (LD_PRELOAD of the runtimes,
                             TORCH_LOWBIT_EXTENSION pointing at the built .so)
  CUDA_HOME                  the CUDA toolkit (default: /usr/local/cuda when it has nvcc)
  TORCH_CUDA_ARCH_LIST       CUDA archs, default "8.0;8.6;8.9;9.0" (A100, RTX 30xx/A10, Ada, Hopper)
  MAX_JOBS                   parallel compile jobs (ninja)

Install without build isolation so the build uses the torch you already have:
  pip install --no-build-isolation -e .
"""
import glob
import os
import shutil
import sysconfig

from setuptools import setup


def find_cuda_home() -> None:
    """Point CUDA_HOME at the toolkit before torch reads it. torch guesses it from `nvcc` on
    PATH; a wrapper script such as /usr/local/bin/nvcc makes that guess /usr/local, whose include
    directory lacks the toolkit headers (crt/host_defines.h)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    for home in ("/usr/local/cuda",):
        if os.path.exists(os.path.join(home, "bin", "nvcc")):
            os.environ["CUDA_HOME"] = home
            return
    nvcc = shutil.which("nvcc")
    if nvcc:
        home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            os.environ["CUDA_HOME"] = home


find_cuda_home()

import torch  # noqa: E402  (after CUDA_HOME is settled)
from torch.utils import cpp_extension  # noqa: E402

DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0"
ROOT = os.path.dirname(os.path.abspath(__file__))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0")


SANITIZE = env_flag("TORCH_LOWBIT_SANITIZE")
# vptr checks need RTTI of torch's own classes across libraries: false reports, left out.
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize=vptr", "-fno-omit-frame-pointer", "-g", "-O1"]


def want_cuda() -> bool:
    if env_flag("TORCH_LOWBIT_CPU_ONLY") or SANITIZE:
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


def sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def extension():
    # csrc/module.cpp, then one folder per op under csrc/cpu and csrc/cuda (csrc/README.md).
    cpu_sources = sources("csrc/*.cpp") + sources("csrc/cpu/**/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc")]  # includes are written from csrc/: "common/...", "cpu/..."
    cxx = ["-O3", "-fopenmp"]  # torch adds the C++ standard it needs
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        archs = os.environ["TORCH_CUDA_ARCH_LIST"]
        print(f"torch_lowbit: building CUDA kernels for {archs}")
        defines = ["-DTORCH_LOWBIT_WITH_CUDA", f'-DTORCH_LOWBIT_CUDA_ARCHS="{archs}"']
        return cpp_extension.CUDAExtension(
            "torch_lowbit._C",
            cpu_sources + sources("csrc/cuda/**/*.cpp") + sources("csrc/cuda/**/*.cu"),
            include_dirs=include_dirs + cuda_include_dirs(),
            extra_compile_args={"cxx": cxx + defines, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"],
        )
    link = ["-fopenmp"]
    if SANITIZE:
        print("torch_lowbit: building the CPU kernels with ASan + UBSan")
        cxx, link = cxx[1:] + SANITIZER_FLAGS, link + SANITIZER_FLAGS[:2]
    return cpp_extension.CppExtension(
        "torch_lowbit._C", cpu_sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx}, extra_link_args=link
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
