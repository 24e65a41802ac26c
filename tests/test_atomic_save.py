"""save() under faults: an exception at any write step, or the process killed at a random moment,
leaves the previous checkpoint directory readable and byte-identical (torch_lowbit/atomic_dir.py)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import torch_lowbit
from torch_lowbit import atomic_dir, checkpoint_checks


def _model(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(256, 192), nn.ReLU(), nn.Linear(192, 64))
    return torch_lowbit.patch(m, bits=3, group_size=32)


def _snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _skeleton():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(256, 192), nn.ReLU(), nn.Linear(192, 64))


class _Tokenizer:
    def save_pretrained(self, path):
        Path(path, "tokenizer.json").write_text("{}")


class _Fault(Exception):
    pass


@pytest.mark.parametrize("exchange_available", [True, False], ids=["renameat2", "two-renames"])
def test_exception_at_every_step_leaves_old_checkpoint(tmp_path, monkeypatch, exchange_available):
    d = torch_lowbit.save(_model(0), tmp_path / "ckpt", tokenizer=_Tokenizer())
    before = _snapshot(d)
    new_model = _model(1)
    if not exchange_available:
        monkeypatch.setattr(atomic_dir, "_renameat2", None)

    import safetensors.torch

    steps = [(safetensors.torch, "save_file"), (checkpoint_checks, "file_sha256"), (checkpoint_checks, "config_sha256"),
             (Path, "write_text"), (_Tokenizer, "save_pretrained"), (atomic_dir, "fsync_tree"), (atomic_dir, "exchange"),
             (atomic_dir.os, "replace")]
    state = {"calls": 0, "fail_at": None, "failed_in": None}
    for owner, name in steps:
        original = getattr(owner, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            state["calls"] += 1
            if state["calls"] == state["fail_at"]:
                state["failed_in"] = _name
                raise _Fault(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)

    failed_in = []
    for fail_at in range(1, 100):
        state.update(calls=0, fail_at=fail_at, failed_in=None)
        try:
            torch_lowbit.save(new_model, d, tokenizer=_Tokenizer())
        except _Fault:
            failed_in.append(state["failed_in"])
            assert _snapshot(d) == before, f"fault in {state['failed_in']} changed the old checkpoint"
            assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "a failed save left temporary files"
            state["fail_at"] = None
            torch_lowbit.load(d, model=_skeleton())
            continue
        break  # the first save with no fault left: it completed
    else:
        pytest.fail("save never completed")
    state["fail_at"] = None
    for step in ("save_file", "file_sha256", "write_text", "save_pretrained", "fsync_tree"):
        assert step in failed_in
    assert ("exchange" if exchange_available else "replace") in failed_in
    x = torch.randn(2, 256)
    assert torch.equal(torch_lowbit.load(d, model=_skeleton())(x), new_model(x))


def test_kill_between_two_renames_is_recovered(tmp_path):
    """The non-Linux fallback renames NAME away before the new one takes its place; a process
    killed between the two leaves .NAME.old-PID, which the next load() or save() puts back."""
    d = torch_lowbit.save(_model(0), tmp_path / "ckpt")
    before = _snapshot(d)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.replace(d, tmp_path / f".ckpt.old-{dead.pid}")
    (tmp_path / f".ckpt.tmp-{dead.pid}-abc").mkdir()  # its half-written new directory
    loaded = torch_lowbit.load(d, model=_skeleton())
    assert _snapshot(d) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    x = torch.randn(2, 256)
    assert torch.equal(loaded(x), _model(0)(x))


def test_target_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "ckpt"
    f.write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        torch_lowbit.save(_model(0), f)
    assert f.read_text() == "keep me"


_SAVER = textwrap.dedent(
    """
    import sys, torch, torch_lowbit
    from torch import nn
    def skeleton():
        with torch.device("meta"):
            return nn.Sequential(nn.Linear(256, 192), nn.ReLU(), nn.Linear(192, 64))
    a = torch_lowbit.load(sys.argv[1], model=skeleton())
    b = torch_lowbit.load(sys.argv[2], model=skeleton())
    print("ready", flush=True)
    i = 0
    while True:
        torch_lowbit.save(b if i % 2 == 0 else a, sys.argv[3])
        i += 1
    """
)


def test_killed_save_leaves_a_complete_checkpoint(tmp_path):
    """SIGKILL at random moments of back-to-back saves of two models: the directory is always
    byte-identical to one of them, loads, and no debris accumulates."""
    a = torch_lowbit.save(_model(0), tmp_path / "a")
    b = torch_lowbit.save(_model(1), tmp_path / "b")
    snapshots = [_snapshot(a), _snapshot(b)]
    assert snapshots[0] != snapshots[1]
    target = tmp_path / "work" / "ckpt"
    torch_lowbit.save(torch_lowbit.load(a, model=_skeleton()), target)
    assert _snapshot(target) == snapshots[0], "save(load(checkpoint)) must reproduce its bytes"
    rng = torch.Generator().manual_seed(0)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(a), str(b), str(target)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.4 * torch.rand(1, generator=rng).item())
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert _snapshot(target) in snapshots
        torch_lowbit.load(target, model=_skeleton())
    torch_lowbit.save(_model(0), target)  # the next save clears what the killed ones left
    assert sorted(p.name for p in target.parent.iterdir()) == ["ckpt"]
