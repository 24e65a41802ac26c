"""FSDP2 (torch_lowbit/fsdp.py) over 2 gloo processes on the CPU: the packed weights are sharded,
QLoRA-style LoRA training on a patched Llama gives the single-process losses, the full state dict
is the saved format and loads into an unsharded model, and a bf16 MixedPrecisionPolicy leaves
the scales alone. The workers are this file run as a script (results in JSON files)."""
import copy

import pytest
import torch

from rank_processes import rank_main, run_ranks

WORLD = 2
TIMEOUT_S = 300
STEPS = 3
TARGETS = ["q_proj", "v_proj", "down_proj"]


def _lora_llama(seed: int):
    import peft
    from transformers import LlamaConfig, LlamaForCausalLM

    import torch_lowbit
    from torch_lowbit.integrations.peft import lora_config

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=96, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64)
    model = torch_lowbit.patch(LlamaForCausalLM(cfg), bits=3, group_size=32)
    pm = peft.get_peft_model(model, lora_config(r=4, lora_alpha=8, target_modules=TARGETS))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:  # nonzero, so both adapter matrices get gradients
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return pm


def _train(pm, ids, steps: int, reduce=None) -> list[float]:
    opt = torch.optim.SGD([p for p in pm.parameters() if p.requires_grad], lr=0.5)
    losses = []
    for _ in range(steps):
        loss = pm(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(reduce(loss.detach()) if reduce else loss.item())
    return losses


def _worker(rank: int) -> dict:
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import MixedPrecisionPolicy
    from torch.distributed.tensor import DTensor

    import torch_lowbit.fsdp
    from torch_lowbit.backends import native

    native.set_cpu_lut_tables("exact")  # the single-process run has twice the rows: same numerics either way
    torch.set_num_threads(1)
    res = {}
    ids = torch.randint(0, 96, (4, 12), generator=torch.Generator().manual_seed(7))

    pm = _lora_llama(0)
    ref = copy.deepcopy(pm)
    res["ref_losses"] = _train(ref, ids, STEPS)

    layers = pm.base_model.model.model.layers
    for layer in layers:
        torch_lowbit.fsdp.fully_shard(layer)
    torch_lowbit.fsdp.fully_shard(pm)
    q = layers[0].self_attn.q_proj.base_layer
    res["planes_sharded"] = isinstance(q.planes, DTensor) and q.planes.to_local().numel() < q.planes.numel()
    res["planes_local_fraction"] = q.planes.to_local().numel() / q.planes.numel()

    def mean_over_ranks(loss):
        dist.all_reduce(loss)
        return loss.item() / WORLD

    half = ids.shape[0] // WORLD
    res["fsdp_losses"] = _train(pm, ids[rank * half:(rank + 1) * half], STEPS, mean_over_ranks)

    full = get_model_state_dict(pm, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:  # a full state dict with cpu_offload lands on rank 0 only
        expected = ref.state_dict()
        res["state_keys_equal"] = sorted(full) == sorted(expected)
        res["state_dtypes_equal"] = all(full[k].dtype == expected[k].dtype for k in expected)
        packed = [k for k in expected if k.endswith((".planes", ".alpha", ".offset"))]
        res["packed_equal"] = bool(packed) and all(torch.equal(full[k], expected[k]) for k in packed)
        res["state_max_rel"] = max(((full[k] - expected[k]).abs().max() / expected[k].abs().max().clamp_min(1e-12)).item()
                                   for k in expected if expected[k].is_floating_point())
        unsharded = _lora_llama(5)  # other weights: everything must come from the state dict
        unsharded.load_state_dict(full)
        with torch.no_grad():
            a, b = unsharded(input_ids=ids).logits, ref(input_ids=ids).logits
        res["reloaded_logits_rel"] = ((a - b).abs().max() / b.abs().max()).item()

    # bf16 mixed precision: float parameters and activations in bf16, the packed scales untouched.
    mp = _lora_llama(0)
    seen = []
    mp_q = mp.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    mp_q.register_forward_pre_hook(lambda m, args: seen.append((str(m.quantized_weight.scale_dtype), str(args[0].dtype))))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in mp.base_model.model.model.layers:
        torch_lowbit.fsdp.fully_shard(layer, mp_policy=policy)
    torch_lowbit.fsdp.fully_shard(mp, mp_policy=policy)
    res["bf16_losses"] = _train(mp, ids[rank * half:(rank + 1) * half], 1, mean_over_ranks)
    res["bf16_seen"] = seen[0]
    return res


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    pytest.importorskip("peft")
    tmp = tmp_path_factory.mktemp("fsdp")
    return run_ranks(__file__, tmp, WORLD, TIMEOUT_S)


def test_packed_weights_are_sharded(fsdp_results):
    for res in fsdp_results:
        assert res["planes_sharded"] and res["planes_local_fraction"] <= 0.5 + 1e-9, res


def test_lora_losses_equal_single_process(fsdp_results):
    for res in fsdp_results:
        ref, got = res["ref_losses"], res["fsdp_losses"]
        assert ref[-1] < ref[0]  # it trains
        for a, b in zip(got, ref):
            assert abs(a - b) <= 1e-5 * abs(b), (got, ref)


def test_full_state_dict_is_the_saved_format_and_reloads(fsdp_results):
    res = fsdp_results[0]
    assert res["state_keys_equal"] and res["state_dtypes_equal"] and res["packed_equal"], res
    assert res["state_max_rel"] < 1e-5 and res["reloaded_logits_rel"] < 1e-5, res


def test_bf16_mixed_precision_keeps_the_scales(fsdp_results):
    res = fsdp_results[0]
    assert res["bf16_seen"] == ["torch.float16", "torch.bfloat16"], res
    assert abs(res["bf16_losses"][0] - res["ref_losses"][0]) < 3e-2 * res["ref_losses"][0], res


if __name__ == "__main__":
    rank_main(_worker, WORLD)
