"""Command line: `python -m torch_lowbit {env,demo,quantize}`."""
from __future__ import annotations

import argparse
import platform
import sys


def cmd_env(args: argparse.Namespace) -> int:
    """Print versions, the compiled kernels per backend, and the CPU's SIMD features."""
    import torch

    import torch_lowbit
    from torch_lowbit import backends

    info = torch_lowbit.build_info()
    triton_version = "not installed"
    if backends.triton_available():
        import triton

        triton_version = triton.__version__
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    rows = [
        ("torch_lowbit", f"{torch_lowbit.__version__} (weight format v{torch_lowbit.FORMAT_VERSION})"),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("torch CUDA", torch.version.cuda or "none (CPU build)"),
        ("GPU", gpu),
        ("triton", triton_version),
        ("CPU kernels", "built (lut_gemm, tiled_gemm, im2win_conv2d, bcq_dequantize)"),
        ("CUDA kernels", f"built for {info['cuda_archs']}" if info["cuda"] else "not built"),
        ("Triton kernels", "available" if backends.triton_available() else "unavailable (no triton)"),
        ("Triton interpreter", "on (TRITON_INTERPRET=1)" if backends.triton_interpret() else "off"),
        ("CPU", platform.processor() or platform.machine()),
        ("CPU SIMD", info["cpu_features"]),
        ("torch threads", str(torch.get_num_threads())),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torch_lowbit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="versions, compiled kernels, CPU features").set_defaults(fn=cmd_env)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
