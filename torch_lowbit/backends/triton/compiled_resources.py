"""What the Triton compiler said about tile configs: shared memory, registers and spills of the
binaries the tile model picks, per GPU architecture, from `python -m torch_lowbit
gpu-compile-check --update-resources` (compiled ahead of time for sm_80/89/90, no GPU needed).

The tile model (tile_model.py) uses these numbers instead of its estimates where it has them, so
it never picks a config that the compiler says spills or needs more shared memory than the card
has. The table is written with the Triton version in CI (3.8); other versions differ a little,
and configs not in it fall back to the estimates.

    {"triton": "3.8.0", "command": "...",
     "entries": {"sm90/bcq_gemm/bits3/act2/16x128x32/warps2/stages2":
                 {"shared": 11776, "registers": 144, "spills": false}, ...}}
"""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data", "triton_resources.json")
_table: dict | None = None


def key(cc: tuple[int, int], kernel: str, weight_bits: int, act_bytes: int, cfg) -> str:
    """The table key of a tile config for one kernel family ("bcq_gemm", "dense_gemm", "im2win",
    "im2win_bcq3", ...) on compute capability `cc`."""
    return (f"sm{cc[0]}{cc[1]}/{kernel}/bits{weight_bits}/act{act_bytes}/{cfg.block_m}x{cfg.block_n}x{cfg.block_k}"
            f"/warps{cfg.num_warps}/stages{cfg.num_stages}")


def table() -> dict:
    """{key: {"shared", "registers", "spills"}}; empty when no table is installed."""
    global _table
    if _table is None:
        try:
            with open(PATH) as f:
                _table = json.load(f).get("entries", {})
        except FileNotFoundError:
            _table = {}
    return _table


def lookup(cc, kernel: str, weight_bits: int, act_bytes: int, cfg) -> dict | None:
    return table().get(key(cc, kernel, weight_bits, act_bytes, cfg))


def set_table(entries: dict | None) -> None:
    """Use `entries` (None: reload the installed file) and forget the tile model's cached picks."""
    global _table
    _table = entries
    from torch_lowbit.backends.triton import tile_model

    for fn in (tile_model.best_config, tile_model.default_config, tile_model.gemv_config):
        fn.cache_clear()


def write(entries: dict, triton_version: str, command: str, path: str = PATH) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"triton": triton_version, "command": command, "entries": dict(sorted(entries.items()))}, f, indent=0)
        f.write("\n")
    os.replace(tmp, path)
