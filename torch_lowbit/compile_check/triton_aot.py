"""Compile a Triton launch for a GPU architecture without a GPU, specialized exactly as Triton's
JIT would specialize it at run time (16-byte aligned pointers, integer arguments divisible by 16
or equal to 1), so the cubin is the one a launch on that card would build.

Uses Triton's own binder (`create_function_from_signature`, `JITFunction._pack_args`) with a
backend made for the target instead of the active driver's; checked against Triton 3.8.
"""
from __future__ import annotations

import torch


def placeholders(dtypes) -> list[torch.Tensor]:
    """A 16-element CPU tensor per pointer argument: only their dtype and alignment (allocations
    are 64-byte aligned, as cudaMalloc's are at least 256) matter to the specialization."""
    return [torch.empty(16, dtype=d) for d in dtypes]


def compile_launch(launch, arch: int):
    """triton.compile of `launch` (a torch_lowbit.triton_kernels.Launch) for sm_`arch`; returns
    Triton's CompiledKernel (asm["cubin"], metadata.shared, ...)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    try:
        from triton.runtime.jit import create_function_from_signature
    except ImportError as e:  # the binder moved: this module follows Triton 3.8's internals
        raise RuntimeError(f"ahead-of-time compile needs Triton's JIT binder (Triton 3.8), found Triton {triton.__version__}: {e}") from e
    from triton.runtime.jit import JITFunction

    kernel = launch.kernel
    if not isinstance(kernel, JITFunction):
        raise RuntimeError(f"{getattr(kernel, '__name__', kernel)}: not a compilable JITFunction (kernels imported under "
                           "TRITON_INTERPRET=1 are interpreter objects); run the compile check in a process without it")
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = dict(launch.meta)
    bound, specialization, options = binder(*placeholders(launch.pointer_dtypes), *launch.scalars, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__)
