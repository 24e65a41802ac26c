"""The implementation families of the ops defined in torch_lowbit/library.py, one folder each:

- native: the compiled extension torch_lowbit._C (csrc/cpu/<op>/ and csrc/cuda/<op>/), which
  registers CPU and CUDA kernels under the ops' own names;
- triton: the Triton kernels (top-level triton_kernels/, installed as
  torch_lowbit.triton_kernels) registered as the `triton_` family, with their tile model;
- reference: torch_lowbit/reference.py, every op's default implementation.

Which family runs a call is decided in one place, torch_lowbit/dispatch.py.
"""
