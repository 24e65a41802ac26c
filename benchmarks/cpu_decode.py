"""End-to-end CPU decode: a HuggingFace LlamaForCausalLM with a published model's config (random
weights: speed does not depend on them), greedy `generate`, against llama.cpp on a GGUF written
from the same weights, same threads, in one process.

    python benchmarks/cpu_decode.py --threads 2                 # TinyLlama-1.1B shape
    python benchmarks/cpu_decode.py --threads 2 --layers 4      # a 4-layer slice of it (quick)

Reports ms per decoded token, the median single decode step of a bare loop (on a shared VM single
steps stall at random; the median step is what a typical token costs, on both sides), prompt
tokens/s, the weight bytes a decode step reads (every
linear layer, the lm_head, one embedding row) and the bandwidth that implies, against the
machine's measured stream rate (a large fp32 GEMV). Ours: fp32, bf16 (no quantization), and
`patch(model, bits=b)` at 2/3/4 bits (its default lm_head is 6-bit, as llama.cpp keeps its
output layer at Q6_K), plus the same with the lm_head left fp32 (`head_bits=None`). llama.cpp
(`pip install llama-cpp-python gguf`): Q4_0, Q3_K, Q2_K. `--compile` adds torch.compile of the
patched model. `--profile` prints the torch profiler's split of one decode step.
Writes benchmarks/results/cpu_decode_<cpu>.{json,md}.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import machine, machine_tag, write

TINYLLAMA = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                 rope_theta=10000.0, tie_word_embeddings=False)


def build_model(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**{**TINYLLAMA, "num_hidden_layers": layers})
    model = LlamaForCausalLM(cfg).eval()
    for p in model.parameters():  # HF's init is N(0, 0.02): keep it, but make it reproducible
        p.requires_grad_(False)
    return model


def weight_bytes(model) -> int:
    """Bytes one decode step reads: every linear (packed where quantized) plus one embedding row."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch_lowbit.LowBitLinear):
            total += m.packed_nbytes
        elif isinstance(m, torch.nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
    emb = model.get_input_embeddings().weight
    return total + emb.shape[1] * emb.element_size()


def time_hf(model, prompt: torch.Tensor, new_tokens: int, repeats: int) -> tuple[float, float]:
    """(ms per decoded token, prompt tokens/s), medians over repeats; decode time = full
    generate minus the prompt-only (1 new token) generate."""
    def gen(n):
        with torch.inference_mode():
            model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)

    gen(2)
    full, pre = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        gen(1)
        pre.append(time.perf_counter() - t)
        t = time.perf_counter()
        gen(new_tokens + 1)
        full.append(time.perf_counter() - t)
    pre_s, full_s = median(pre), median(full)
    return (full_s - pre_s) / new_tokens * 1e3, prompt.shape[1] / pre_s


def median(values) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def time_forward_loop(model, prompt: torch.Tensor, new_tokens: int, repeats: int) -> tuple[float, float, float]:
    """The same greedy decode as a bare loop of model(...) calls with the KV cache, without
    generate's per-token machinery: what the model itself costs, as llama.cpp's loop measures.
    Returns (ms per token, prompt tokens/s, median ms of one step over every step of every
    repeat: on a shared VM single steps stall at random, and the median step is what a typical
    token costs)."""
    steps = []

    def run():
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            t1 = time.perf_counter()
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(new_tokens):
                t = time.perf_counter()
                out = model(tok, past_key_values=past, use_cache=True)
                past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
                steps.append(time.perf_counter() - t)
            return t1 - t0, time.perf_counter() - t1

    run()
    steps.clear()
    pre, dec = zip(*(run() for _ in range(repeats)))
    return median(dec) / new_tokens * 1e3, prompt.shape[1] / median(pre), median(steps) * 1e3


def time_llama_cpp(path: Path, prompt: list[int], new_tokens: int, threads: int, repeats: int) -> tuple[float, float, float]:
    import llama_cpp

    n_ctx = max(512, len(prompt) + new_tokens + 8)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)

    steps = []

    def run(n):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            tok = int(llm.scores[llm.n_tokens - 1].argmax())  # greedy, as HF generate
            llm.eval([tok])
            steps.append(time.perf_counter() - t)
        return t1 - t0, time.perf_counter() - t1

    run(2)
    steps.clear()
    pre, dec = zip(*(run(new_tokens) for _ in range(repeats)))
    return median(dec) / new_tokens * 1e3, len(prompt) / median(pre), median(steps) * 1e3


def stream_rate_gbs() -> float:
    """The machine's DRAM stream rate as seen by a large fp32 GEMV (well past the L3)."""
    w = torch.randn(16384, 16384)
    x = torch.randn(1, 16384)
    F.linear(x, w)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        F.linear(x, w)
        times.append(time.perf_counter() - t)
    return w.numel() * 4 / sorted(times)[2] / 1e9


def profile_step(model, prompt: torch.Tensor) -> str:
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        out = model(prompt, use_cache=True)
        nxt = out.logits[:, -1:].argmax(-1)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(nxt, past_key_values=out.past_key_values, use_cache=True)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ours = sum(e.self_cpu_time_total for e in events if e.key.startswith("torch_lowbit::"))
    dense = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul"))
    return f"one decode step: {total / 1e3:.1f} ms self CPU time; torch_lowbit ops {100 * ours / max(total, 1):.0f}%, dense matmuls {100 * dense / max(total, 1):.0f}%, everything else {100 * (total - ours - dense) / max(total, 1):.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=TINYLLAMA["num_hidden_layers"])
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--llama", nargs="*", default=["Q4_0", "Q3_K", "Q2_K"], help="llama.cpp quantizations ([] to skip)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the result file name (keeps runs with other settings apart)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta = machine()
    stream = stream_rate_gbs()
    base = build_model(args.layers)
    prompt = torch.randint(3, TINYLLAMA["vocab_size"], (1, args.prompt), generator=torch.Generator().manual_seed(1))
    rows = []

    def record(name, nbytes, ms, tps, step, extra=""):
        rows.append({"model": name, "ms/token": ms, "tokens/s": 1e3 / ms, "prompt tokens/s": tps, "weight MB/token": nbytes / 1e6,
                     "GB/s": nbytes / (ms * 1e-3) / 1e9, "median step ms": step, "note": extra})
        print(f"{name}: {ms:.1f} ms/token, median step {step:.1f} ms, prompt {tps:.1f} tok/s, {nbytes / 1e6:.0f} MB/token", flush=True)

    def record_hf(name, model):
        """generate()'s ms/token and prompt tokens/s, and the bare forward loop's median step."""
        ms, tps = time_hf(model, prompt, args.new_tokens, args.repeats)
        step = time_forward_loop(model, prompt, args.new_tokens, args.repeats)[2]
        record(name, weight_bytes(model), ms, tps, step)

    record_hf("fp32 (HF)", base)
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    record_hf("bf16 (HF)", bf16)
    del bf16
    notes = []
    for bits in args.bits:
        for head in ("fp32", "6-bit"):
            model = copy.deepcopy(base)
            torch_lowbit.patch(model, bits=bits, head_bits=6 if head == "6-bit" else None)
            name = f"torch_lowbit {bits}-bit g128 (lm_head {head}{', the default patch' if head == '6-bit' else ''})"
            record_hf(name, model)
            if bits == 3 and head == "6-bit":
                if args.profile:
                    notes.append(f"{name}, {profile_step(model, prompt)}")
                if args.compile:
                    compiled = torch.compile(model)
                    record_hf(name + " + torch.compile", compiled)
            del model
    if args.llama:
        import llama_gguf

        with tempfile.TemporaryDirectory() as tmp:
            f32 = llama_gguf.write_f32_gguf(base, Path(tmp) / "model-f32.gguf")
            for ftype in args.llama:
                path = llama_gguf.quantize(f32, Path(tmp) / f"model-{ftype}.gguf", ftype, args.threads)
                ms, tps, step = time_llama_cpp(path, prompt[0].tolist(), args.new_tokens, args.threads, args.repeats)
                record(f"llama.cpp {ftype}", path.stat().st_size, ms, tps, step, "bytes: the whole GGUF file")
    by = {r["model"]: r for r in rows}
    best_q4 = by.get("llama.cpp Q4_0")
    for r in rows:
        r["vs llama.cpp Q4_0"] = best_q4["ms/token"] / r["ms/token"] if best_q4 else None
        r["median step vs llama.cpp Q4_0"] = best_q4["median step ms"] / r["median step ms"] if best_q4 else None
        r["of stream rate"] = r["GB/s"] / stream
    command = "python benchmarks/" + " ".join(["cpu_decode.py"] + sys.argv[1:])
    md = [f"CPU decode — {meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, ISA {meta['cpu_isa']}, LUT tables {meta['cpu_lut_tables']}, {meta['date']}",
          f"Command: `{command}`. LlamaForCausalLM, TinyLlama-1.1B config with {args.layers} layers, random weights; prompt {args.prompt} tokens, "
          f"{args.new_tokens} new tokens greedy, medians of {args.repeats}. Stream rate (fp32 GEMV 16384^2): {stream:.1f} GB/s.", "",
          "ms/token: the whole decode (generate for HF models) over new tokens; median step: the median of every single step of a bare decode loop "
          "(HF: model(...) with the KV cache; llama.cpp: eval of one token), which single-step stalls of a shared VM do not move.", "",
          "| model | ms/token | tokens/s | vs llama.cpp Q4_0 | median step ms | vs llama.cpp (median step) | prompt tokens/s | weight MB/token | GB/s | of stream rate |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = f"{r['vs llama.cpp Q4_0']:.2f}x" if r["vs llama.cpp Q4_0"] else "-"
        vs_step = f"{r['median step vs llama.cpp Q4_0']:.2f}x" if r["median step vs llama.cpp Q4_0"] else "-"
        md.append(f"| {r['model']} | {r['ms/token']:.1f} | {r['tokens/s']:.1f} | {vs} | {r['median step ms']:.1f} | {vs_step} | {r['prompt tokens/s']:.1f} | "
                  f"{r['weight MB/token']:.0f} | {r['GB/s']:.1f} | {100 * r['of stream rate']:.0f}% |")
    md += [""] + [f"- {n}" for n in notes]
    md.append("- llama.cpp's bytes are the GGUF file (its lm_head is Q6_K, embeddings quantized); ours count what a step reads.")
    text = "\n".join(md)
    name = "cpu_decode_" + machine_tag() + (f"_{args.layers}layers" if args.layers != TINYLLAMA["num_hidden_layers"] else "")
    write(name + (f"_{args.tag}" if args.tag else ""), rows, text, {**meta, "stream GB/s": stream})
    print(text)


if __name__ == "__main__":
    main()
