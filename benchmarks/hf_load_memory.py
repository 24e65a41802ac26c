"""Peak memory of quantizing while loading (issue 16's goal: <= the loaded model + 1.5x its largest
float layer) against loading the float model and then calling patch(), each in a fresh process:
peak and final anonymous memory (the checkpoint's mmap'ed pages are page cache, not counted), and
the transient (peak - final) in units of the largest quantized float layer.

A float checkpoint of a random Llama (default: hidden 2048, 4 layers, ff 5632, vocab 32000, the
cpu_decode shape) is written once to a temporary directory with save_pretrained.

    python benchmarks/hf_load_memory.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from harness import machine, machine_tag, write

# Peak anonymous memory, sampled every 5 ms: the file-backed pages of the mmap'ed checkpoint count
# in RSS (and VmHWM) while they are touched, but are page cache the kernel can drop, not memory
# the load holds.
CHILD = r"""
import json, sys, threading, time, torch, torch_lowbit
from transformers import AutoModelForCausalLM
def anon_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:"))
peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], anon_kib())
        time.sleep(0.005)
path, mode = sys.argv[1], sys.argv[2]
base = anon_kib()
threading.Thread(target=sample, daemon=True).start()
if mode == "quantize-while-loading":
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=torch_lowbit.TorchLowbitConfig(bits=3))
else:
    model = torch_lowbit.patch(AutoModelForCausalLM.from_pretrained(path), bits=3)
time.sleep(0.05)
end = anon_kib()
size = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
print(json.dumps({"peak_kib_over_imports": max(peak[0], end) - base, "end_kib_over_imports": end - base, "model_bytes": size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--ff", type=int, default=5632)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per path (the median transient is reported)")
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
            runs = []
            for _ in range(args.repeats):  # interleaving would be fairer; the file stays in page cache either way
                out = subprocess.run([sys.executable, "-c", CHILD, tmp, mode], capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            # the run with the median transient (peak - end)
            runs.sort(key=lambda r: r["peak_kib_over_imports"] - r["end_kib_over_imports"])
            rows[mode] = runs[len(runs) // 2]
    meta = machine()
    lines = [f"Llama h{args.hidden} x{args.layers} ff{args.ff} vocab{args.vocab}, 3-bit g128 (lm_head and embeddings float); "
             f"largest quantized float layer {largest / 2**20:.0f} MiB; median of {args.repeats} processes; {meta['cpu']}, {meta['date']}; command: python benchmarks/hf_load_memory.py",
             "",
             "| path | peak anonymous memory over imports | at the end | peak - end (transient) | transient in largest float layers | model tensors (some mmap'ed from the file) |",
             "|---|---|---|---|---|---|"]
    for mode, r in rows.items():
        peak, end = r["peak_kib_over_imports"] * 1024, r["end_kib_over_imports"] * 1024
        lines.append(f"| {mode} | {peak / 2**20:.0f} MiB | {end / 2**20:.0f} MiB | {(peak - end) / 2**20:.0f} MiB | {(peak - end) / largest:.2f}x | {r['model_bytes'] / 2**20:.0f} MiB |")
    print("\n".join(lines))
    write(f"hf_load_memory_{machine_tag()}", [{"path": k, **v} for k, v in rows.items()], "\n".join(lines), meta)

if __name__ == "__main__":
    main()
