"""Op argument fuzzer (hypothesis): the raw torch.ops.torch_lowbit.* ops on CPU tensors (the C++
kernels, whose checks must stand on their own) and the public torch_lowbit.ops API.

Each case starts from a valid call (random bits, group size, odd N/K/M, dtypes, strides, conv
geometry, NaN/Inf values) and applies 0-2 perturbations (wrong dtype, shape, K, group size,
device, stride, padding ...). Then:
  - a valid call (by the format's rules, written out independently here) must succeed and match
    the plain-PyTorch reference (torch_lowbit/reference.py): same shape and dtype, the same
    non-finite elements, relative error within the table's bound;
  - any call that succeeds must match the reference (never a result where the reference fails);
  - a call that fails must raise RuntimeError/ValueError/TypeError naming an argument.
A crash kills the process: run it in a subprocess (tests/test_fuzz.py does) with --progress.

    python tests/fuzz/fuzz_ops.py --cases 5000          # full mode
    python tests/fuzz/fuzz_ops.py --cases 300 --seed 3  # what CI runs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import torch_lowbit
from torch_lowbit import reference
from torch_lowbit.backends import native
from torch_lowbit.format import PANEL_ROWS, padded_layout, panels

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the shared error bounds
from error_bounds import INT8_TABLE_BOUND, abs_weight  # noqa: E402

RAW = torch.ops.torch_lowbit
ARG_NAMES = ("x", "planes", "alpha", "offset", "in_features", "group_size", "bias", "weight", "weight_shape", "stride",
             "padding", "dilation", "groups", "qw", "w", "bits", "kernel", "device", "dtype", "backend", "Expected", "expected")
ISAS = [isa for isa in ("portable", "avx2", "avx512", "amx")
        if ["portable", "avx2", "avx512", "amx"].index(isa) <= ["portable", "avx2", "avx512", "amx"].index(torch_lowbit.build_info()["cpu_isa_best"])]


class Finding(AssertionError):
    pass


# ---- valid starting points -------------------------------------------------------------------

def _bcq(d, n, k):
    bits = d.draw(st.integers(1, 8), label="bits")
    group = d.draw(st.sampled_from([32, 64, 128, 256, -1]), label="group_size")
    kp, g = padded_layout(k, group)
    scale_dtype = d.draw(st.sampled_from([torch.float16, torch.float32]), label="scale_dtype")
    gen = torch.Generator().manual_seed(d.draw(st.integers(0, 2**31 - 1), label="seed"))
    planes = torch.randint(0, 256, (bits, panels(n), kp // 8, PANEL_ROWS), dtype=torch.uint8, generator=gen)
    alpha = (torch.rand(bits, kp // g, n, generator=gen) * 0.2 + 0.01).to(scale_dtype)
    offset = (torch.randn(kp // g, n, generator=gen) * 0.05).to(scale_dtype)
    return {"planes": planes, "alpha": alpha, "offset": offset, "in_features": k, "group_size": g, "_gen": gen}


def _activation(d, shape, gen, name="x"):
    dtype = d.draw(st.sampled_from([torch.float32, torch.float32, torch.float16, torch.bfloat16, torch.float64]), label=f"{name}.dtype")
    x = torch.randn(shape, generator=gen).to(dtype)
    special = d.draw(st.sampled_from(["none", "none", "none", "nan", "inf", "zeros", "outlier"]), label=f"{name}.values")
    if x.numel() and special != "none":
        flat = x.view(-1)
        i = d.draw(st.integers(0, x.numel() - 1), label=f"{name}.index")
        if special == "zeros":
            x.zero_()
        else:
            flat[i] = {"nan": float("nan"), "inf": float("inf"), "outlier": 300.0}[special]
    layout = d.draw(st.sampled_from(["contiguous", "contiguous", "strided", "transposed"]), label=f"{name}.layout")
    if layout == "strided" and x.dim() >= 1:
        big = torch.zeros(*shape[:-1], shape[-1] * 2, dtype=dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    elif layout == "transposed" and x.dim() == 2:
        x = x.t().contiguous().t()
    return x


PUBLIC_VALUES = [0, 1, 2, -1, 3, (1, 2), (2, 1, 0, 1), (1, -1), "same", "valid", "full", 1.5, True, None, [1], (0, 0, 0)]


def draw_public_case(d) -> tuple[str, dict]:
    """torch_lowbit.ops on a QuantizedWeight from quantize_weight, with Python-level arguments."""
    gen = torch.Generator().manual_seed(d.draw(st.integers(0, 2**31 - 1), label="seed"))
    bits = d.draw(st.integers(1, 8), label="bits")
    group = d.draw(st.sampled_from([32, 64, 128, -1]), label="group_size")
    method = d.draw(st.sampled_from(["rtn", "mse", "bcq"]), label="method")
    conv = d.draw(st.booleans(), label="conv")
    if conv:
        c, o, r = d.draw(st.integers(1, 6), label="C"), d.draw(st.integers(1, 6), label="O"), d.draw(st.integers(1, 3), label="R")
        w = torch.randn(o, c, r, r, generator=gen)
        x = _activation(d, (d.draw(st.integers(0, 2), label="batch"), c, d.draw(st.integers(1, 8), label="H"), d.draw(st.integers(1, 8), label="W")), gen)
    else:
        n, k = d.draw(st.sampled_from([1, 5, 16, 33]), label="N"), d.draw(st.sampled_from([1, 31, 64, 100]), label="K")
        w = torch.randn(n, k, generator=gen)
        lead = d.draw(st.sampled_from([(), (0,), (1,), (3,), (2, 3)]), label="lead")
        x = _activation(d, (*lead, k), gen) if lead else torch.randn(k, generator=gen)
    qw = torch_lowbit.quantize_weight(w, bits=bits, group_size=group, method=method)
    args = {"x": x, "qw": qw, "_conv": conv, "_gen": gen,
            "backend": d.draw(st.sampled_from(["auto", "cpu", "auto"]), label="backend"),
            "fn": d.draw(st.sampled_from(["im2win_conv2d"] if conv else ["linear", "lut_gemm", "tiled_gemm"]), label="fn")}
    if d.draw(st.booleans(), label="has_bias") and args["fn"] in ("linear", "im2win_conv2d"):
        args["bias"] = torch.randn(w.shape[0], generator=gen)
    if conv:
        for key in ("stride", "padding", "dilation", "groups"):
            if d.draw(st.integers(0, 3), label=f"{key}.set") == 0:
                args[key] = d.draw(st.sampled_from(PUBLIC_VALUES), label=f"{key}.value")
    return "public", args


def judge_public(a: dict) -> str:
    fn = getattr(torch_lowbit.ops, a["fn"])
    kwargs = {k: a[k] for k in ("bias", "stride", "padding", "dilation", "groups") if k in a}
    try:
        out = fn(a["x"], a["qw"], **kwargs, backend=a["backend"])
    except (RuntimeError, ValueError, TypeError) as err:
        if not any(name in str(err) for name in ARG_NAMES):
            raise Finding(f"public {a['fn']}: error names no argument: {type(err).__name__}: {str(err)[:300]}")
        return "refused"
    try:
        ref = fn(a["x"], a["qw"], **kwargs, backend="reference")
    except Exception as err:  # noqa: BLE001
        raise Finding(f"public {a['fn']} returned a result where the reference backend fails: {err}")
    qw = a["qw"]
    abs_qw = torch_lowbit.QuantizedWeight(*abs_weight(qw.planes, qw.alpha, qw.offset), qw.shape, qw.group_size)
    mag = fn(a["x"].abs(), abs_qw, **{k: v for k, v in kwargs.items() if k != "bias"}, backend="reference")
    return _compare(out, ref, mag, _tolerance("public", a, native.cpu_lut_tables()))


def draw_case(d) -> tuple[str, dict]:
    if d.draw(st.integers(0, 4), label="public?") == 0:
        return draw_public_case(d)
    op = d.draw(st.sampled_from(["bcq_dequantize", "bcq_linear", "lut_gemm", "tiled_gemm_bcq", "tiled_gemm", "im2win_conv2d", "im2win_conv2d_bcq"]), label="op")
    if op in ("bcq_dequantize", "bcq_linear", "lut_gemm", "tiled_gemm_bcq"):
        n = d.draw(st.sampled_from([1, 2, 15, 16, 17, 33, 48]), label="N")
        k = d.draw(st.sampled_from([1, 7, 31, 32, 33, 64, 100, 129, 256, 300]), label="K")
        args = _bcq(d, n, k)
        if op != "bcq_dequantize":
            m = d.draw(st.sampled_from([0, 1, 2, 3, 5, 8, 16, 17, 33, 40]), label="M")
            args["x"] = _activation(d, (m, k), args["_gen"])
        if op == "bcq_linear" and d.draw(st.booleans(), label="has_bias"):
            args["bias"] = torch.randn(n, generator=args["_gen"]).to(d.draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), label="bias.dtype"))
    elif op == "tiled_gemm":
        gen = torch.Generator().manual_seed(d.draw(st.integers(0, 2**31 - 1), label="seed"))
        m, n, k = (d.draw(st.sampled_from(v), label=l) for v, l in (([0, 1, 3, 17, 40], "M"), ([1, 5, 16, 33], "N"), ([1, 7, 32, 65], "K")))
        args = {"x": _activation(d, (m, k), gen), "weight": _activation(d, (n, k), gen, "weight"), "_gen": gen}
    else:
        gen_seed = d.draw(st.integers(0, 2**31 - 1), label="seed")
        groups = d.draw(st.sampled_from([1, 1, 2, 3]), label="groups")
        c = groups * d.draw(st.integers(1, 4), label="C/groups")
        o = groups * d.draw(st.integers(1, 4), label="O/groups")
        r, s = d.draw(st.integers(1, 3), label="R"), d.draw(st.integers(1, 3), label="S")
        stride = [d.draw(st.integers(1, 3), label="sh"), d.draw(st.integers(1, 3), label="sw")]
        dilation = [d.draw(st.integers(1, 2), label="dh"), d.draw(st.integers(1, 2), label="dw")]
        padding = [d.draw(st.integers(0, 2), label=f"pad{i}") for i in range(4)]
        h = d.draw(st.integers(max(1, dilation[0] * (r - 1) + 1 - padding[0] - padding[1]), 9), label="H")
        w = d.draw(st.integers(max(1, dilation[1] * (s - 1) + 1 - padding[2] - padding[3]), 9), label="W")
        batch = d.draw(st.sampled_from([0, 1, 2]), label="batch")
        weight_shape = [o, c // groups, r, s]
        if op == "im2win_conv2d":
            gen = torch.Generator().manual_seed(gen_seed)
            args = {"weight": _activation(d, tuple(weight_shape), gen, "weight"), "_gen": gen}
        else:
            args = _bcq(d, o, (c // groups) * r * s)
            args["weight_shape"] = weight_shape
            del args["in_features"]
        x = _activation(d, (batch, c, h, w), args["_gen"])
        if d.draw(st.booleans(), label="channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        args.update(x=x, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if d.draw(st.booleans(), label="has_bias"):
            args["bias"] = torch.randn(o, generator=args["_gen"])
    return op, args


# ---- perturbations ---------------------------------------------------------------------------

def perturb(d, op: str, args: dict) -> list[str]:
    keys = [k for k in args if not k.startswith("_")]
    done = []
    for _ in range(d.draw(st.sampled_from([0, 0, 1, 1, 2]), label="n_perturbations")):
        key = d.draw(st.sampled_from(keys), label="perturb.key")
        v = args[key]
        if isinstance(v, torch.Tensor):
            how = d.draw(st.sampled_from(["dtype", "grow", "shrink", "drop_dim", "add_dim", "meta", "empty", "noncontig"]), label="perturb.tensor")
            if how == "dtype":
                v = v.to(d.draw(st.sampled_from([torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.float32, torch.bfloat16, torch.float64, torch.complex64, torch.bool]), label="perturb.dtype"))
            elif how in ("grow", "shrink") and v.dim():
                dim = d.draw(st.integers(0, v.dim() - 1), label="perturb.dim")
                size = list(v.shape)
                size[dim] = size[dim] + 1 if how == "grow" else max(size[dim] - 1, 0)
                v = torch.zeros(size, dtype=v.dtype) if v.dtype != torch.uint8 else torch.randint(0, 256, size, dtype=torch.uint8)
            elif how == "drop_dim" and v.dim():
                v = v.reshape(-1) if v.dim() > 1 else (v.reshape(-1)[0].clone() if v.numel() else v.sum())
            elif how == "add_dim":
                v = v.unsqueeze(0)
            elif how == "meta":
                v = v.to("meta")
            elif how == "empty":
                v = v.new_empty((0,) * v.dim())
            elif how == "noncontig" and v.dim() and v.shape[-1] > 1:
                v = torch.cat([v, v], dim=-1)[..., ::2]  # same values, stride 2
            args[key] = v
            done.append(f"{key}:{how}")
        elif isinstance(v, int):
            args[key] = d.draw(st.sampled_from([v + 1, v - 1, v * 2, 0, -1, -v, 7, 2**31, 2**62, -(2**62)]), label="perturb.int")
            done.append(f"{key}:{args[key]}")
        elif isinstance(v, list):
            i = d.draw(st.integers(0, len(v)), label="perturb.index")
            v = list(v)
            if i == len(v):
                v = v[:-1] if d.draw(st.booleans(), label="perturb.list_drop") else v + [1]
            else:
                v[i] = d.draw(st.sampled_from([0, -1, v[i] + 1, 2**31, 2**62, 100]), label="perturb.list_value")
            args[key] = v
            done.append(f"{key}:{v}")
    if "bias" not in args and op in ("bcq_linear", "im2win_conv2d", "im2win_conv2d_bcq") and d.draw(st.integers(0, 9), label="wrong_bias") == 0:
        args["bias"] = torch.randn(3)
        done.append("bias:[3]")
    return done


# ---- the format's validity rules, written out independently of the C++ checks ------------------

def _cpu_float(t) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def valid_bcq(a: dict, k: int) -> bool:
    p, al, of, g = a["planes"], a["alpha"], a["offset"], a["group_size"]
    if not (isinstance(p, torch.Tensor) and p.dtype == torch.uint8 and p.dim() == 4 and p.device.type == "cpu"):
        return False
    if not (_cpu_float(al) and _cpu_float(of) and al.dtype in (torch.float16, torch.float32) and of.dtype == al.dtype and al.dim() == 3 and of.dim() == 2):
        return False
    bits, n, kp = p.shape[0], al.shape[2], p.shape[2] * 8
    if not (1 <= bits <= 8 and p.shape[3] == PANEL_ROWS and p.shape[1] == panels(n) and n >= 1):
        return False
    if not (g > 0 and g % 8 == 0 and kp % g == 0 and 0 < k <= kp):
        return False
    # K must be the K the planes were padded for: its padded_layout (per-group or per-channel).
    if (kp, g) not in (padded_layout(k, g), padded_layout(k, -1)):
        return False
    return tuple(al.shape) == (bits, kp // g, n) and tuple(of.shape) == (kp // g, n)


def valid_call(op: str, a: dict) -> bool:
    x = a.get("x")
    if op == "bcq_dequantize":
        return valid_bcq(a, a["in_features"])
    if not (_cpu_float(x) and x.dim() == (2 if op in ("bcq_linear", "lut_gemm", "tiled_gemm_bcq", "tiled_gemm") else 4)):
        return False
    bias = a.get("bias")
    if op in ("bcq_linear", "lut_gemm", "tiled_gemm_bcq"):
        if not valid_bcq(a, a["in_features"]) or x.shape[1] != a["in_features"]:
            return False
        return bias is None or (_cpu_float(bias) and tuple(bias.shape) == (a["alpha"].shape[2],))
    if op == "tiled_gemm":
        w = a["weight"]
        return _cpu_float(w) and w.dim() == 2 and w.shape[1] == x.shape[1]
    # convolutions
    ws = list(a["weight"].shape) if op == "im2win_conv2d" else a["weight_shape"]
    if op == "im2win_conv2d" and not (_cpu_float(a["weight"]) and a["weight"].dim() == 4):
        return False
    if len(ws) != 4 or min(ws) < 1 or len(a["stride"]) != 2 or len(a["padding"]) != 4 or len(a["dilation"]) != 2:
        return False
    if op == "im2win_conv2d_bcq" and (not valid_bcq(a, ws[1] * ws[2] * ws[3]) or a["alpha"].shape[2] != ws[0]):
        return False
    g = a["groups"]
    if not (g >= 1 and x.shape[1] % g == 0 and ws[0] % g == 0 and ws[1] * g == x.shape[1]):
        return False
    if min(a["stride"]) < 1 or min(a["dilation"]) < 1 or min(a["padding"]) < 0 or max(a["padding"] + a["stride"] + a["dilation"]) > 2**20:
        return False
    pt, pb, pl, pr = a["padding"]
    if x.shape[2] + pt + pb < a["dilation"][0] * (ws[2] - 1) + 1 or x.shape[3] + pl + pr < a["dilation"][1] * (ws[3] - 1) + 1:
        return False
    return bias is None or (_cpu_float(bias) and tuple(bias.shape) == (ws[0],))


# ---- running and judging ---------------------------------------------------------------------

def _call_args(op, a):
    if op == "bcq_dequantize":
        return (a["planes"], a["alpha"], a["offset"], a["in_features"], a["group_size"])
    if op in ("bcq_linear", "lut_gemm", "tiled_gemm_bcq"):
        extra = (a.get("bias"),) if op == "bcq_linear" else ()
        return (a["x"], a["planes"], a["alpha"], a["offset"], a["in_features"], a["group_size"], *extra)
    if op == "tiled_gemm":
        return (a["x"], a["weight"])
    conv = (a.get("bias"), a["stride"], a["padding"], a["dilation"], a["groups"])
    if op == "im2win_conv2d":
        return (a["x"], a["weight"], *conv)
    return (a["x"], a["planes"], a["alpha"], a["offset"], a["weight_shape"], a["group_size"], *conv)


def _tolerance(op, a, tables) -> float:
    """Bound on |kernel - reference| relative to the magnitude of the terms summed (below)."""
    dtypes = [t.dtype for t in (a.get("x"), a.get("weight")) if isinstance(t, torch.Tensor)]
    tol = 1e-4  # fp32 sums in another order
    if torch.bfloat16 in dtypes:
        tol = 1e-2  # bf16 kernels (AMX) round the expanded weight to bf16
    if tables == "int8" and op in ("bcq_linear", "lut_gemm", "public"):
        tol = max(tol, INT8_TABLE_BOUND + 1e-3)  # int8 tables' worst case (tests/error_bounds.py)
    return tol


def _magnitude(op, a):
    """sum |x| |terms|: what a sum's rounding error scales with (a plain relative error is
    meaningless for an output that is small through cancellation)."""
    x = a.get("x")
    ax = x.abs() if isinstance(x, torch.Tensor) else None
    if op == "tiled_gemm":
        return reference.tiled_gemm(ax, a["weight"].abs())
    if op == "im2win_conv2d":
        return reference.im2win_conv2d(ax, a["weight"].abs(), None, a["stride"], a["padding"], a["dilation"], a["groups"])
    planes, alpha, offset = abs_weight(a["planes"], a["alpha"], a["offset"])
    if op == "bcq_dequantize":
        return reference.bcq_dequantize(planes, alpha, offset, a["in_features"], a["group_size"])
    if op == "im2win_conv2d_bcq":
        return reference.im2win_conv2d_bcq(ax, planes, alpha, offset, a["weight_shape"], a["group_size"], None, a["stride"], a["padding"], a["dilation"], a["groups"])
    return reference.bcq_linear(ax, planes, alpha, offset, a["in_features"], a["group_size"])


def judge(op: str, a: dict, tables: str) -> str:
    args = _call_args(op, a)
    valid = valid_call(op, a)
    try:
        out = getattr(RAW, op)(*args)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as err:
        msg = str(err)
        if valid:
            raise Finding(f"a valid call was refused: {type(err).__name__}: {msg[:300]}")
        if not any(name in msg for name in ARG_NAMES):
            raise Finding(f"error names no argument: {type(err).__name__}: {msg[:300]}")
        return "refused"
    try:
        ref = getattr(reference, op)(*args)
    except Exception as err:  # noqa: BLE001
        raise Finding(f"the kernel returned a result where the reference fails ({type(err).__name__}: {str(err)[:200]}); valid={valid}")
    return _compare(out, ref, _magnitude(op, a), _tolerance(op, a, tables))


def _compare(out, ref, mag, tol) -> str:
    if out.shape != ref.shape or out.dtype != ref.dtype or out.device != ref.device:
        raise Finding(f"result {tuple(out.shape)} {out.dtype} {out.device}, reference {tuple(ref.shape)} {ref.dtype} {ref.device}")
    if out.device.type == "meta":
        raise Finding("the call returned a meta tensor for CPU inputs")
    o, r = out.float(), ref.float()
    if not torch.equal(torch.isfinite(o), torch.isfinite(r)):
        raise Finding(f"non-finite elements differ: kernel {int((~torch.isfinite(o)).sum())}, reference {int((~torch.isfinite(r)).sum())}")
    m = mag.float()
    check = torch.isfinite(r) & torch.isfinite(m)
    if check.any():
        eps = torch.finfo(out.dtype).eps if out.dtype.is_floating_point else 0.0
        bound = tol * m[check] + 2 * eps * r[check].abs() + 1e-30
        excess = ((o[check] - r[check]).abs() / bound).max().item()
        if not excess <= 1.0:
            raise Finding(f"error {excess:.3g}x the bound (tol {tol:.3g} of sum |x||terms|)")
    return "matched"


def make_test(cases: int, seed_value: int, progress: Path | None, counts: dict):
    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(d):
        isa = d.draw(st.sampled_from(ISAS), label="isa")
        tables = d.draw(st.sampled_from(["int8", "exact"]), label="tables")
        native.set_cpu_isa(isa)
        native.set_cpu_lut_tables(tables)
        op, args = draw_case(d)
        what = perturb(d, op, args) if op != "public" else []
        if progress is not None:
            progress.write_text(json.dumps({"op": op, "isa": isa, "tables": tables, "perturbations": what,
                                            "shapes": {k: list(v.shape) if isinstance(v, torch.Tensor) else str(v) for k, v in args.items() if not k.startswith("_")}}, default=str))
        if op == "public":
            outcome = judge_public(args)
            counts["public"] = counts.get("public", 0) + 1
        else:
            outcome = judge(op, args, tables)
            label = "valid" if valid_call(op, args) else "invalid"
            counts[label] = counts.get(label, 0) + 1
        counts[outcome] = counts.get(outcome, 0) + 1

    return fuzz


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", type=Path, default=None)
    parser.add_argument("--memory-limit-gb", type=float, default=8.0,
                        help="address-space limit, so that a call asking for absurd memory fails inside the process (a finding) instead of being OOM-killed; not under ASan")
    args = parser.parse_args(argv)
    if args.memory_limit_gb > 0 and "asan" not in os.environ.get("LD_PRELOAD", ""):
        import resource

        limit = int(args.memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    counts: dict = {}
    try:
        make_test(args.cases, args.seed, args.progress, counts)()
    except Finding as err:
        print(f"FINDING {err}", *getattr(err, "__notes__", []), sep="\n", file=sys.stderr)
        print(json.dumps({"cases": sum(counts.get(k, 0) for k in ("matched", "refused")), **counts, "findings": 1}))
        return 1
    print(json.dumps({"cases": sum(counts.get(k, 0) for k in ("matched", "refused")), **counts, "findings": 0}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TORCH_LOWBIT_POISON", "1")
    sys.exit(main())
