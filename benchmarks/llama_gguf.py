"""A GGUF file of a HuggingFace LlamaForCausalLM, for timing llama.cpp on the same model shape
and weights as our patched model (benchmarks/cpu_decode.py).

Written with the `gguf` package (llama architecture keys and tensor names), with a made-up
SentencePiece-style vocabulary of the model's size (the benchmark feeds token ids, never text),
then quantized by llama.cpp's own `llama_model_quantize` (through llama-cpp-python) to Q4_0,
Q3_K or Q2_K. The q/k projections are permuted from HF's rotate-half layout to the interleaved
one llama.cpp's rope expects, so the GGUF computes the same function as the HF model.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

FTYPES = {"Q4_0": 2, "Q2_K": 10, "Q3_K": 12, "Q4_K": 15}  # llama_ftype values: LLAMA_FTYPE_MOSTLY_*


def _permute_qk(w: torch.Tensor, heads: int) -> torch.Tensor:
    # HF rotates halves of each head; llama.cpp's rope rotates adjacent pairs.
    out, dim = w.shape
    return w.reshape(heads, 2, out // heads // 2, dim).transpose(1, 2).reshape(out, dim)


def write_f32_gguf(model, path: Path) -> Path:
    """The model's weights as an F32 GGUF (llama architecture)."""
    import gguf

    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("torch_lowbit benchmark model")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_rope_freq_base(float(getattr(cfg, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_file_type(0)  # all F32
    vocab = cfg.vocab_size
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    tokens += [f"\u2581t{i}".encode() for i in range(vocab - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)  # unknown, control, byte, normal
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    for i in range(cfg.num_hidden_layers):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                t = _permute_qk(t, cfg.num_attention_heads)
            elif hf == "self_attn.k_proj":
                t = _permute_qk(t, cfg.num_key_value_heads)
            writer.add_tensor(f"blk.{i}.{gg}.weight", t.contiguous().numpy())
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    writer.add_tensor("output.weight", sd.get("lm_head.weight", sd["model.embed_tokens.weight"]).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize(src: Path, dst: Path, ftype: str, threads: int) -> Path:
    """llama.cpp's own quantizer (its defaults: e.g. output.weight kept at Q6_K)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({ftype}) failed with {rc}")
    return dst
