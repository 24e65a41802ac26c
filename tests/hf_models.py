"""Tiny HuggingFace models built from configs (no downloads) for the patch/save/train tests."""
import torch


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=101, n_positions=32, n_embd=64, n_layer=2, n_head=4)
    return GPT2LMHeadModel(cfg).eval(), {"input_ids": torch.randint(0, 101, (2, 12))}


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval(), {"input_ids": torch.randint(0, 96, (2, 11))}


def tiny_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=103, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=32)
    ids = torch.randint(0, 103, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return BertModel(cfg).eval(), {"input_ids": ids, "attention_mask": mask}


def tiny_resnet():
    from transformers import ResNetConfig, ResNetModel

    cfg = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")
    return ResNetModel(cfg).eval(), {"pixel_values": torch.randn(2, 3, 32, 32)}


MODELS = {"gpt2": tiny_gpt2, "bert": tiny_bert, "resnet": tiny_resnet}


def output_of(model, batch):
    out = model(**batch)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state
