"""Command line: `python -m torch_lowbit {env,demo,quantize,gpu-compile-check}`."""
from __future__ import annotations

import argparse
import platform
import sys


def cmd_env(args: argparse.Namespace) -> int:
    """Print versions, the compiled kernels per backend, and the CPU's SIMD features."""
    import torch

    import torch_lowbit
    from torch_lowbit import dispatch

    info = torch_lowbit.build_info()
    triton_version = "not installed"
    if dispatch.triton_available():
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
        ("CPU kernels", f"built (bcq_linear, lut_gemm, tiled_gemm, im2win_conv2d, bcq_dequantize); path {info['cpu_isa']}"),
        ("CUDA kernels", f"built for {info['cuda_archs']}" if info["cuda"] else "not built"),
        ("Triton kernels", "available" if dispatch.triton_available() else "unavailable (no triton)"),
        ("Triton interpreter", "on (TRITON_INTERPRET=1)" if dispatch.triton_interpret() else "off"),
        ("CPU", platform.processor() or platform.machine()),
        ("CPU SIMD", info["cpu_features"]),
        ("torch threads", str(torch.get_num_threads())),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from torch_lowbit import demo

    return demo.main(tuple(args.bits), args.method, args.group_size)


def _model_class(config, fallback):
    """The checkpoint's own class (config.architectures, e.g. LlamaForCausalLM, so its head is
    kept and saved) where transformers has it; else `fallback` (AutoModel: the bare encoder)."""
    import transformers

    for name in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return fallback


def _head_bits(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def cmd_quantize(args: argparse.Namespace) -> int:
    """Quantize a local HuggingFace checkpoint directory and save it with torch_lowbit.save."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    import torch_lowbit
    from torch_lowbit.config import QuantConfig
    from torch_lowbit.quantize.calibration import text_batches

    model = _model_class(AutoConfig.from_pretrained(args.model_dir), AutoModel).from_pretrained(args.model_dir).eval()
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    except (OSError, ValueError):
        pass  # a model without tokenizer files (e.g. a vision model)
    calibration = None
    if args.method == "gptq" and args.calibration == "synthetic":
        calibration = torch_lowbit.synthetic_batches(model, tokenizer)
    elif args.method == "gptq":
        if args.calibration is None or tokenizer is None:
            raise SystemExit("quantize: --method gptq needs --calibration FILE (one text per line) and tokenizer files in MODEL_DIR, or --calibration synthetic")
        with open(args.calibration) as f:
            texts = [line.strip() for line in f if line.strip()]
        calibration = text_batches(tokenizer, texts)
    cfg = QuantConfig(args.bits, args.group_size, args.method, getattr(torch, args.scale_dtype))
    torch_lowbit.patch(model, bits=cfg.bits, group_size=cfg.group_size, method=cfg.method, scale_dtype=cfg.scale_dtype,
                       calibration=calibration, skip=args.skip, head_bits=args.head_bits, progress=True, verbose=True)
    out = torch_lowbit.save(model, args.out_dir, tokenizer=tokenizer)
    print(f"saved {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from torch_lowbit.config import METHODS

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gpu-compile-check"]:  # its own parser: python -m torch_lowbit gpu-compile-check --help
        from torch_lowbit import compile_check

        return compile_check.main(argv[1:])

    parser = argparse.ArgumentParser(prog="python -m torch_lowbit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="versions, compiled kernels, CPU features").set_defaults(fn=cmd_env)
    demo = sub.add_parser("demo", help="quantize the bundled all-MiniLM-L6-v2 at 3 and 4 bits and compare with fp32")
    demo.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    demo.add_argument("--method", default="gptq", choices=METHODS)
    demo.add_argument("--group-size", type=int, default=128)
    demo.set_defaults(fn=cmd_demo)
    quant = sub.add_parser("quantize", help="quantize a local HF checkpoint directory")
    quant.add_argument("model_dir")
    quant.add_argument("out_dir")
    quant.add_argument("--bits", type=int, default=3)
    quant.add_argument("--group-size", type=int, default=128)
    quant.add_argument("--method", default="mse", choices=METHODS)
    quant.add_argument("--scale-dtype", default="float16", choices=["float16", "float32"])
    quant.add_argument("--calibration", help="for --method gptq: a text file (one calibration sample per line), or 'synthetic' (random tokens, no data)")
    quant.add_argument("--skip", nargs="*", default=[], help="glob patterns of module names to keep float")
    quant.add_argument("--head-bits", type=_head_bits, default=6, help="bits of the output head (lm_head), or 'none' to keep it float")
    quant.set_defaults(fn=cmd_quantize)
    sub.add_parser("gpu-compile-check", help="compile every GPU kernel config for sm_80/89/90 and check the binaries (no GPU needed)",
                   add_help=False)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
