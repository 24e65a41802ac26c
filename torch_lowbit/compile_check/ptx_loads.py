"""Which kernel argument each global load of a PTX kernel reads, and how many bytes per load.

A forward taint pass over the PTX text: the register a `ld.param` of pointer argument i lands in
carries i, and so does every register computed from it (address arithmetic, moves, selects);
repeated to a fixed point so loop-carried pointers keep their origin. A `ld.global` or
`cp.async` whose address register carries i reads argument i; its width comes from the opcode
(`.v4.b32` = 16 bytes) or the copy size. That attributes "the weight stream is loaded 1 byte at a
time" to the weight argument, which SASS opcode counts alone cannot.
"""
from __future__ import annotations

import collections
import re

_PARAM = re.compile(r"ld\.param\.[a-z0-9]+\s+(%\w+),\s*\[\w+_param_(\d+)\]")
_REG = re.compile(r"%\w+")
_TYPE_BITS = {"b8": 8, "u8": 8, "s8": 8, "b16": 16, "u16": 16, "s16": 16, "f16": 16, "bf16": 16,
              "b32": 32, "u32": 32, "s32": 32, "f32": 32, "b64": 64, "u64": 64, "s64": 64, "f64": 64, "b128": 128}


def _statements(ptx: str):
    for raw in ptx.split(";"):
        line = raw.strip()
        if "\n" in line:  # drop labels / directives glued before the instruction
            line = line.rsplit("\n", 1)[1].strip()
        line = re.sub(r"^@!?%\w+\s+", "", line)  # predicate guard
        if line and not line.startswith(("//", ".", "}", "{")):
            yield line


def _load_width(opcode: str) -> int:
    parts = opcode.split(".")
    vec = 1
    for p in parts:
        if p in ("v2", "v4", "v8"):
            vec = int(p[1:])
    bits = next((_TYPE_BITS[p] for p in reversed(parts) if p in _TYPE_BITS), 0)
    return vec * bits // 8


def global_load_widths(ptx: str, pointers: int) -> dict[int, collections.Counter]:
    """{pointer argument index: Counter(bytes per load instruction -> count)} for every global
    load (ld.global*, cp.async) in the kernel text, for the first `pointers` kernel parameters
    (Triton keeps non-constexpr arguments in order; ours put the tensors first)."""
    statements = list(_statements(ptx))
    origin: dict[str, frozenset] = {}
    for st in statements:
        if (m := _PARAM.search(st)) and int(m.group(2)) < pointers:
            origin[m.group(1)] = frozenset({int(m.group(2))})
    changed = True
    while changed:  # propagate through arithmetic until nothing changes
        changed = False
        for st in statements:
            opcode, _, rest = st.partition(" ")
            if opcode.startswith(("ld.", "st.", "cp.", "bar", "mma", "wgmma", "ldmatrix", "setp")) or not rest:
                continue
            regs = _REG.findall(rest)
            if len(regs) < 2:
                continue
            src = frozenset().union(*(origin.get(r, frozenset()) for r in regs[1:]))
            if src and not src <= origin.get(regs[0], frozenset()):
                origin[regs[0]] = origin.get(regs[0], frozenset()) | src
                changed = True
    loads: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for st in statements:
        opcode, _, rest = st.partition(" ")
        if opcode.startswith("ld.global"):
            address = rest[rest.index("[") + 1 : rest.index("]")]
            width = _load_width(opcode)
        elif opcode.startswith("cp.async") and "shared.global" in opcode:
            operands = [o.strip() for o in rest.split(",")]
            address = operands[1].strip("[] ")
            width = int(operands[2], 0)
        else:
            continue
        regs = _REG.findall(address)
        for arg in origin.get(regs[0], frozenset()) if regs else ():
            loads[arg][width] += 1
    return dict(loads)
