"""Runs a test file's worker as `world` processes (gloo rendezvous through a file) and collects
the JSON each rank writes: the multi-process tests (FSDP2, tensor parallel) share this."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_ranks(script: str, tmp: Path, world: int, timeout_s: float) -> list[dict]:
    """`python script RANK RDZV_FILE OUT_JSON` for each rank; every process is killed by
    `timeout_s` (a rank whose peer died would otherwise wait forever); a failed rank's output is
    in the assertion message."""
    repo = str(Path(__file__).resolve().parents[1])  # the package as the tests import it (installed or in place)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, script, str(r), str(tmp / "rdzv"), str(tmp / f"rank{r}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for r in range(world)]
    deadline, logs = time.monotonic() + timeout_s, []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out.decode(errors="replace")[-4000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed:\n{logs[r]}"
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(world)]


def rank_main(worker, world: int) -> None:
    """The script side of run_ranks: joins the gloo group, runs worker(rank) -> dict and writes
    it as this rank's JSON."""
    import torch.distributed as dist

    rank, init_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        Path(out).write_text(json.dumps(worker(rank)))
    finally:
        dist.destroy_process_group()
