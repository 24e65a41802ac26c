"""Environment switches, read one way everywhere: set and neither empty nor "0" means on
(csrc/common/checks.h reads TORCH_LOWBIT_POISON by the same rule)."""
from __future__ import annotations

import os


def env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0")
