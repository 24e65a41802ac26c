"""Checkpoint fuzzer: mutate saved checkpoints (config fields, tensor files) and load them.

Every case must end in one of two ways:
  - load() succeeds and the model's outputs are bit-identical to the original's, or
  - load() raises CheckpointError (a named error).
Anything else is a finding: another exception type ("unclear"), a load that succeeds with
different outputs ("silent"), or a crash (the process dies: run it in a subprocess, as
tests/test_fuzz.py does, so a crash is visible with the case that caused it).

    python tests/fuzz/fuzz_checkpoints.py --cases 1000          # full mode (docs/DESIGN.md)
    python tests/fuzz/fuzz_checkpoints.py --cases 200 --seed 7  # what CI runs, seeded

Mutations: a config value replaced by a value of another type or out of range, a key deleted or
added (with the config checksum recomputed half the time, so the field checks behind it are
reached), whole-file damage (truncation, bit flips in the safetensors header or data, garbage,
missing files), tensor edits (dtype, shape, dropped, renamed, extra) with the checksums
recomputed half the time.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import torch_lowbit
from torch_lowbit import CheckpointError
from torch_lowbit.checkpoint_checks import config_sha256

SPECIAL_VALUES = [
    -1, 0, 1, 2, 3, 7, 8, 9, 16, 31, 32, 48, 64, 128, 256, 2**31, 2**63, -(2**63), 3.5, 1.0, float("nan"), float("inf"),
    True, False, None, "", "3", "x", "float16", "float32", "bfloat16", "linear", "conv2d", "rtn", "gptq",
    [], [1], [-1, 64], [48, 64], [4, 1, 3, 3], [0, 0], {}, {"a": "b"}, "a" * 300,
]


class Net(nn.Module):
    """Linear layers of several settings and a conv: one forward that uses all of them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 48)
        self.b = nn.Linear(48, 40, bias=False)
        self.c = nn.Linear(40, 8)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x, img):
        return self.c(torch.relu(self.b(torch.relu(self.a(x))))), self.conv(img)


def _base_net() -> nn.Module:
    torch.manual_seed(0)
    net = Net()
    return torch_lowbit.patch(
        net, bits=3, group_size=32, skip=[],
        overrides={"b": {"bits": 2, "group_size": -1}, "conv": {"bits": 4, "group_size": 32}},
    )


def _net_skeleton() -> nn.Module:
    with torch.device("meta"):
        return Net()


def _base_gpt2():
    """A tiny HF GPT-2 (Conv1D layers, lm_head tied to the embedding), rebuilt by load() from
    config.json. None without transformers."""
    try:
        import transformers
    except ImportError:
        return None
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=16, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    return torch_lowbit.patch(model, bits=3, group_size=32)


def _outputs(model, kind):
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        if kind == "net":
            return model(torch.randn(3, 64, generator=g), torch.randn(1, 2, 5, 5, generator=g))
        ids = torch.randint(0, 64, (1, 8), generator=g)
        return (model(ids).logits,)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


# ---- mutations: each takes (rng, files: {name: bytes}) and edits files in place ------------

def _paths(obj, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _rehash_config(cfg):
    qc = cfg.get("quantization_config")
    if isinstance(qc, dict) and "config_sha256" in qc:
        qc["config_sha256"] = config_sha256(qc)


def _rehash_checksums(files):
    """Redo both checksums for the edited files (a deliberate edit, not corruption)."""
    cfg = json.loads(files["config.json"])
    qc = cfg.get("quantization_config")
    if isinstance(qc, dict) and "weights_sha256" in qc:
        qc["weights_sha256"] = hashlib.sha256(files["model.safetensors"]).hexdigest()
    _rehash_config(cfg)
    files["config.json"] = json.dumps(cfg).encode()


def mutate_config(rng, files):
    cfg = json.loads(files["config.json"])
    qc_paths = [p for p, _ in _paths(cfg) if p[:1] == ("quantization_config",) and len(p) > 1]
    path = rng.choice(qc_paths)
    parent = cfg
    for key in path[:-1]:
        parent = parent[key]
    op = rng.random()
    if op < 0.6:
        parent[path[-1]] = copy.deepcopy(rng.choice(SPECIAL_VALUES))
    elif op < 0.8 and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[rng.choice(["extra", "bits", "shape", "kind", "0", "a.weight"])] = copy.deepcopy(rng.choice(SPECIAL_VALUES))
    else:
        parent.append(copy.deepcopy(rng.choice(SPECIAL_VALUES)))
    if rng.random() < 0.5:
        _rehash_config(cfg)
    files["config.json"] = json.dumps(cfg, allow_nan=True).encode()
    return f"config {'/'.join(map(str, path))}"


def mutate_file_bytes(rng, files):
    name = rng.choice(["model.safetensors", "model.safetensors", "config.json"])
    data = bytearray(files[name])
    op = rng.choice(["truncate", "flip_header", "flip_data", "garbage", "delete", "empty"])
    header_len = 8 + struct.unpack("<Q", bytes(data[:8]))[0] if name == "model.safetensors" else len(data)
    if op == "truncate":
        del data[rng.randrange(len(data)):]
    elif op == "flip_header":
        i = rng.randrange(min(header_len, len(data)))
        data[i] ^= 1 << rng.randrange(8)
    elif op == "flip_data" and len(data) > header_len:
        i = rng.randrange(header_len, len(data))
        data[i] ^= 1 << rng.randrange(8)
    elif op == "garbage":
        data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif op == "delete":
        files[name] = None
        return f"{name} deleted"
    else:
        data = bytearray()
    files[name] = bytes(data)
    if name == "model.safetensors" and op == "flip_header" and rng.random() < 0.5:
        _rehash_checksums(files)  # a header edit with the checksum redone: the structural checks must catch it
    return f"{name} {op}"


def mutate_tensors(rng, files):
    from safetensors.torch import load, save

    tensors = load(files["model.safetensors"])
    name = rng.choice(sorted(tensors))
    t = tensors[name]
    op = rng.choice(["dtype", "shape", "drop", "rename", "extra", "noncontiguous-shape"])
    rehash = rng.random() < 0.5
    if op == "dtype":
        new_dtype = rng.choice([torch.uint8, torch.int8, torch.float16, torch.float32, torch.bfloat16, torch.int64])
        tensors[name] = t.to(new_dtype)
        # A float parameter stored in another float dtype with the checksums redone is a
        # deliberate, valid edit (models mix fp32 norms with bf16 weights): a different model,
        # not a corrupted one. Only its un-rehashed form is a fault the loader must catch.
        if t.dtype.is_floating_point and new_dtype.is_floating_point and not name.endswith((".alpha", ".offset")):
            rehash = False
    elif op == "shape":
        tensors[name] = t.reshape(-1)[: max(0, t.numel() - rng.randrange(1, 4))].clone() if t.numel() else torch.zeros(1, dtype=t.dtype)
    elif op == "drop":
        del tensors[name]
    elif op == "rename":
        tensors[name + rng.choice(["_", ".x", "s"])] = tensors.pop(name)
    elif op == "extra":
        tensors[rng.choice(["extra", name + ".extra", "a.weight"])] = torch.zeros(3)
    else:
        tensors[name] = t.reshape(-1).reshape(1, -1).clone() if t.numel() else t
    data = save(tensors, metadata={"format": "pt"})
    files["model.safetensors"] = data
    if rehash:
        _rehash_checksums(files)
    return f"tensor {name} {op}"


MUTATIONS = [mutate_config, mutate_config, mutate_file_bytes, mutate_tensors]


def _apply(mutation, rng, files) -> str:
    """A second mutation on files the first one already broke beyond parsing does nothing."""
    try:
        return mutation(rng, files)
    except Exception as err:  # noqa: BLE001
        return f"{mutation.__name__} skipped ({type(err).__name__})"


def run(cases: int, seed: int, progress: Path | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="torch_lowbit_fuzz_ckpt_"))
    bases = [("net", _base_net(), _net_skeleton)]
    gpt2 = _base_gpt2()
    if gpt2 is not None:
        bases.append(("gpt2", gpt2, None))
    originals = {}
    for kind, model, skeleton in bases:
        d = torch_lowbit.save(model, tmp / f"base_{kind}")
        originals[kind] = ({p.name: p.read_bytes() for p in d.iterdir()}, _outputs(model, kind), skeleton)
    counts = {"cases": 0, "loaded_identical": 0, "named_error": 0}
    findings = []
    for case in range(cases):
        rng = random.Random(seed * 1_000_003 + case)
        kind = rng.choice(sorted(originals))
        files, expected, skeleton = originals[kind]
        files = dict(files)
        what = [_apply(rng.choice(MUTATIONS), rng, files) for _ in range(rng.choice([1, 1, 1, 2]))]
        d = tmp / "case"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        for name, data in files.items():
            if data is not None:
                (d / name).write_bytes(data)
        if progress is not None:
            progress.write_text(json.dumps({"case": case, "seed": seed, "base": kind, "mutations": what}))
        counts["cases"] += 1
        try:
            model = torch_lowbit.load(d, model=skeleton() if skeleton else None)
            got = _outputs(model, kind)
        except CheckpointError:
            counts["named_error"] += 1
            continue
        except Exception as err:  # noqa: BLE001 - classifying is the point
            findings.append({"case": case, "base": kind, "mutations": what, "finding": "unclear", "error": f"{type(err).__name__}: {err}"[:300]})
            continue
        if _same(got, expected):
            counts["loaded_identical"] += 1
        else:
            findings.append({"case": case, "base": kind, "mutations": what, "finding": "silent", "error": "loaded with different outputs"})
    shutil.rmtree(tmp, ignore_errors=True)
    return {**counts, "findings": findings}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", type=Path, default=None, help="file holding the case being run (to name a crash)")
    args = parser.parse_args(argv)
    result = run(args.cases, args.seed, args.progress)
    for f in result["findings"][:20]:
        print("FINDING", json.dumps(f), file=sys.stderr)
    print(json.dumps({k: v for k, v in result.items() if k != "findings"} | {"findings": len(result["findings"])}))
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    os.environ.setdefault("TORCH_LOWBIT_POISON", "1")
    sys.exit(main())
