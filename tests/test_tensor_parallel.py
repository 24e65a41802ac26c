"""Tensor parallelism (torch_lowbit/tensor_parallel.py) over 2 gloo processes on the CPU: a
patched Llama's logits and greedy tokens, and an MLP's outputs and input gradients, equal the
single-process model's. The workers are this file run as a script; each writes its results to
a JSON file that the test reads."""

import pytest
import torch

from rank_processes import rank_main, run_ranks

WORLD = 2
TIMEOUT_S = 300


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=96, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _worker(rank: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import parallelize_module

    import torch_lowbit
    from torch_lowbit.tensor_parallel import LowBitColwiseParallel, LowBitRowwiseParallel, parallelize

    torch.set_num_threads(1)
    mesh = init_device_mesh("cpu", (WORLD,))
    res = {}

    # A patched Llama by its own base_model_tp_plan (lm_head stays float, replicated).
    torch.manual_seed(0)
    model = torch_lowbit.patch(_llama(), bits=3, group_size=32)
    ids = torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits
        ref_tokens = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    parallelize(model, mesh)
    attn = model.model.layers[0].self_attn
    res["q_proj_rows"], res["o_proj_cols"] = attn.q_proj.out_features, attn.o_proj.in_features
    res["planes_bytes"] = attn.q_proj.planes.numel()
    with torch.no_grad():
        res["llama_rel"] = _rel(model(ids).logits, ref)
        res["tokens_equal"] = torch.equal(model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False), ref_tokens)

    # An MLP with biases, each rank seeded differently (rank 0's weights must win), a float layer
    # among the low-bit ones (torch's own styles), and the input gradient through both.
    torch.manual_seed(10 + rank)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    torch_lowbit.patch(mlp, bits=4, group_size=32, skip=("4",))
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    w = torch.randn(5, 64, generator=torch.Generator().manual_seed(3))
    (mlp(x) * w).sum().backward()
    ref_y, ref_grad = mlp(x).detach(), x.grad.clone()
    x.grad = None
    parallelize_module(mlp, mesh, {"0": LowBitColwiseParallel(), "2": LowBitRowwiseParallel(),
                                   "4": LowBitColwiseParallel(), "6": LowBitRowwiseParallel()})
    y = mlp(x)
    (y * w).sum().backward()
    res["mlp_rel"], res["mlp_grad_rel"] = _rel(y.detach(), ref_y), _rel(x.grad, ref_grad)
    res["mlp_y"] = y.detach().flatten().tolist()
    res["float_layer_is_dtensor"] = type(mlp[4].weight.data).__name__ == "DTensor"

    # Shapes that do not cut on panels / groups: clear errors.
    errors = {}
    for name, (layer, style) in {"colwise": (torch.nn.Linear(64, 40), LowBitColwiseParallel()),
                                 "rowwise": (torch.nn.Linear(96, 32), LowBitRowwiseParallel())}.items():
        q = torch_lowbit.LowBitLinear.from_float(layer, bits=3, group_size=32)
        try:
            parallelize_module(q, mesh, style)
        except ValueError as e:
            errors[name] = str(e)
    res["errors"] = errors
    return res


@pytest.fixture(scope="module")
def tp_results(tmp_path_factory):
    pytest.importorskip("transformers")
    tmp = tmp_path_factory.mktemp("tp")
    return run_ranks(__file__, tmp, WORLD, TIMEOUT_S)


def test_llama_logits_and_tokens_equal_single_process(tp_results):
    for res in tp_results:
        assert res["q_proj_rows"] == 128 // WORLD and res["o_proj_cols"] == 128 // WORLD
        assert res["llama_rel"] < 1e-5, res
        assert res["tokens_equal"]


def test_mlp_outputs_and_input_gradients_equal_rank0_single_process(tp_results):
    res = tp_results[0]  # rank 0's weights are the broadcast ones
    assert res["mlp_rel"] < 1e-5 and res["mlp_grad_rel"] < 1e-5, res
    assert res["float_layer_is_dtensor"]  # a float layer in the plan gets torch's own style
    # Rank 1 computes with rank 0's weights, not its own: the same output, far from its own model's.
    assert tp_results[1]["mlp_y"] == res["mlp_y"] and tp_results[1]["mlp_rel"] > 1e-2


def test_cuts_off_panels_or_groups_are_clear_errors(tp_results):
    errors = tp_results[0]["errors"]
    assert "whole 16-row panels" in errors["colwise"] and "out_features 40" in errors["colwise"]
    assert "whole groups" in errors["rowwise"] and "in_features 96" in errors["rowwise"]


if __name__ == "__main__":
    rank_main(_worker, WORLD)
