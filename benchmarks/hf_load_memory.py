"""Peak memory of quantizing while loading (issue 16's goal: <= the loaded model + 1.5x its largest
float layer) against loading the float model and then calling patch(), each in a fresh process.

A float checkpoint of a random Llama (default: hidden 2048, 4 layers, ff 5632, vocab 32000, the
cpu_decode shape) is written once to a temporary directory with save_pretrained.

    python benchmarks/hf_load_memory.py
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, torch, torch_lowbit
from transformers import AutoModelForCausalLM
path, mode = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "quantize-while-loading":
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=torch_lowbit.TorchLowbitConfig(bits=3))
else:
    model = torch_lowbit.patch(AutoModelForCausalLM.from_pretrained(path), bits=3)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
print(json.dumps({"peak_kib_over_imports": peak - base, "model_bytes": size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--ff", type=int, default=5632)
    parser.add_argument("--vocab", type=int, default=32000)
    args = parser.parse_args()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ff, num_hidden_layers=args.layers,
                      num_attention_heads=args.hidden // 64, num_key_value_heads=args.hidden // 64)
    with tempfile.TemporaryDirectory() as tmp:
        model = LlamaForCausalLM(cfg)
        largest = max(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear) and not m is model.lm_head)
        model.save_pretrained(tmp)
        del model
        rows = {}
        for mode in ("quantize-while-loading", "load-then-patch"):
            out = subprocess.run([sys.executable, "-c", CHILD, tmp, mode], capture_output=True, text=True, check=True)
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Llama h{args.hidden} x{args.layers} ff{args.ff} vocab{args.vocab}, 3-bit g128 (lm_head and embeddings float); "
          f"largest quantized float layer {largest / 2**20:.0f} MiB")
    print("| path | peak RSS over imports | loaded model | peak - model | in largest float layers |")
    print("|---|---|---|---|---|")
    for mode, r in rows.items():
        peak = r["peak_kib_over_imports"] * 1024
        extra = peak - r["model_bytes"]
        print(f"| {mode} | {peak / 2**20:.0f} MiB | {r['model_bytes'] / 2**20:.0f} MiB | {extra / 2**20:.0f} MiB | {extra / largest:.2f}x |")


if __name__ == "__main__":
    main()
