"""Concurrency: one patched model called from 8 Python threads at once, and ops called while
other threads change torch.set_num_threads, give the single-thread results bit for bit (every
CPU kernel computes each output element in one thread, in a fixed order, so the thread count
does not change results; the kernels' scratch buffers are thread_local to the calling thread)."""
import threading

import pytest
import torch
from torch import nn

import torch_lowbit
from torch_lowbit.backends import native


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(256, 320)
        self.down = nn.Linear(320, 96)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x, img):
        return self.down(torch.relu(self.up(x))), self.conv(img)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torch_lowbit.patch(_Net(), bits=3, group_size=64, overrides={"down": {"bits": 4, "group_size": 32}}).eval()


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    m = [1, 2, 5, 17, 40][seed % 5]  # LUT-GEMM and tiled-GEMM row counts
    dtype = [torch.float32, torch.bfloat16, torch.float16][seed % 3]
    return torch.randn(m, 256, generator=g).to(dtype), torch.randn(1 + seed % 2, 3, 9, 7, generator=g).to(dtype)


def _run_threads(target, n):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_one_model_from_eight_threads(model):
    cases = [_inputs(seed) for seed in range(24)]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            expected = [model(*c) for c in cases]
    finally:
        torch.set_num_threads(threads_before)
    mismatches = []

    def worker(i):
        with torch.inference_mode():
            for rep in range(3):
                for j in range(i, len(cases), 8):
                    got = model(*cases[j])
                    if not all(torch.equal(a, b) for a, b in zip(got, expected[j])):
                        mismatches.append((i, rep, j))

    _run_threads(worker, 8)
    assert not mismatches, f"results differ from the single-thread run: {mismatches[:5]}"


def test_ops_while_other_threads_change_num_threads(model):
    qw = model.up.quantized_weight
    xs = [torch.randn(m, 256) for m in (1, 3, 16, 40)]
    img = torch.randn(2, 3, 9, 7)
    expected = [torch_lowbit.ops.linear(x, qw) for x in xs] + [model.conv(img)]
    stop = threading.Event()
    bad = []

    def toggler(i):
        n = 0
        while not stop.is_set():
            torch.set_num_threads(1 + (n + i) % 3)
            torch_lowbit.ops.lut_gemm(xs[n % 2], qw)  # and run kernels under the new count
            n += 1

    def runner(i):
        try:
            for _ in range(30):
                outs = [torch_lowbit.ops.linear(x, qw) for x in xs] + [model.conv(img)]
                bad.extend(k for k, (a, b) in enumerate(zip(outs, expected)) if not torch.equal(a, b))
        finally:
            stop.set()

    threads_before = torch.get_num_threads()
    try:
        with torch.no_grad():
            _run_threads(lambda i: runner(i) if i == 0 else toggler(i), 3)
    finally:
        torch.set_num_threads(threads_before)
    assert not bad, f"outputs changed while the thread count changed: cases {sorted(set(bad))}"


def test_isa_switch_is_process_wide_and_safe_between_calls(model):
    """set_cpu_isa is for tests and benchmarks; calls made after it see it, in every thread."""
    x = torch.randn(3, 256)
    best = native.cpu_isa()
    ref = torch_lowbit.ops.linear(x, model.up.quantized_weight, backend="reference")
    results = {}
    try:
        native.set_cpu_isa("portable")

        def worker(i):
            results[i] = (native.cpu_isa(), torch_lowbit.ops.linear(x, model.up.quantized_weight))

        _run_threads(worker, 4)
    finally:
        native.set_cpu_isa(best)
    assert {isa for isa, _ in results.values()} == {"portable"}
    for _, y in results.values():
        assert ((y - ref).norm() / ref.norm()).item() < 1e-4
