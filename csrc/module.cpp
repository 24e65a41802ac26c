// The Python module torch_lowbit._C: loading it registers every op (schemas.cpp and the
// TORCH_LIBRARY_IMPL blocks); build_info() feeds `python -m torch_lowbit env`.
#include <torch/extension.h>

#include "cpu/kernels.h"

#ifndef TORCH_LOWBIT_CUDA_ARCHS
#define TORCH_LOWBIT_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("build_info", [] {
    pybind11::dict info;
#ifdef TORCH_LOWBIT_WITH_CUDA
    info["cuda"] = true;
#else
    info["cuda"] = false;
#endif
    info["cuda_archs"] = TORCH_LOWBIT_CUDA_ARCHS;
    info["cpu_features"] = torch_lowbit::cpu::cpu_features();
    return info;
  });
}
