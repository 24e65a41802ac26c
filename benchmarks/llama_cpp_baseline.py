"""llama.cpp's Q4_0 matrix multiply as a benchmark baseline, called through the ggml libraries
that the optional `llama-cpp-python` package bundles (pip compiles llama.cpp from source, ~8 min
on 2 cores: `pip install llama-cpp-python`).

ggml has no Python API of its own in that package, so this module declares the few C functions it
needs with ctypes (signatures from ggml.h / ggml-backend.h / ggml-alloc.h / ggml-cpu.h) and runs
exactly what llama.cpp runs for a linear layer at decode time: a one-node graph
`ggml_mul_mat(W_q4_0, x_f32)` on the CPU backend. The activations are quantized to Q8_0 inside
ggml's op, as in llama.cpp, and that counts in the timing.

Three weight buffers, as llama.cpp picks them:
  "cpu"     plain Q4_0 blocks in a host buffer (`--no-repack`),
  "repack"  the CPU_REPACK buffer type (Q4_0 interleaved 8x8 for AVX2/AVX-512 GEMV),
  "amx"     the AMX buffer type (Intel AMX int8 tiles; llama.cpp's default where the CPU has it).

    layer = GgmlQ4Linear(w, buffer="repack", threads=2)   # w: [N, K] fp32, K % 32 == 0
    y = layer(x)                                           # x: [m, K] fp32 -> [m, N] fp32 (a view
                                                           # of a buffer reused by the next call)
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

GGML_TYPE_F32 = 0
GGML_TYPE_Q4_0 = 2
Q4_0_BLOCK = 32  # weights per Q4_0 block (one fp16 scale + 16 bytes of nibbles: 4.5 bits/weight)
BUFFER_NAMES = {"repack": "CPU_REPACK", "amx": "AMX"}


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _lib_dir() -> Path:
    import llama_cpp  # noqa: F401  (raises ImportError when the optional package is missing)

    return Path(llama_cpp.__file__).parent / "lib"


_LIBS: tuple[ctypes.CDLL, ctypes.CDLL] | None = None


def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(libggml-base, libggml-cpu) with the prototypes used here declared."""
    global _LIBS
    if _LIBS is not None:
        return _LIBS
    d = _lib_dir()
    base = ctypes.CDLL(str(d / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(d / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    P, S, I64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64
    protos = {
        base: {
            "ggml_init": (P, [_InitParams]),
            "ggml_free": (None, [P]),
            "ggml_tensor_overhead": (S, []),
            "ggml_graph_overhead": (S, []),
            "ggml_new_tensor_2d": (P, [P, ctypes.c_int, I64, I64]),
            "ggml_mul_mat": (P, [P, P, P]),
            "ggml_new_graph": (P, [P]),
            "ggml_build_forward_expand": (None, [P, P]),
            "ggml_row_size": (S, [ctypes.c_int, I64]),
            "ggml_nbytes": (S, [P]),
            "ggml_get_data": (P, [P]),
            "ggml_quantize_chunk": (S, [ctypes.c_int, P, P, I64, I64, I64, P]),
            "ggml_backend_alloc_ctx_tensors_from_buft": (P, [P, P]),
            "ggml_backend_buffer_free": (None, [P]),
            "ggml_backend_buft_name": (ctypes.c_char_p, [P]),
            "ggml_backend_tensor_set": (None, [P, P, S, S]),
            "ggml_backend_tensor_get": (None, [P, P, S, S]),
            "ggml_backend_graph_compute": (ctypes.c_int, [P, P]),
            "ggml_backend_free": (None, [P]),
            "ggml_backend_reg_dev_get": (P, [P, S]),
            "ggml_backend_reg_get_proc_address": (P, [P, ctypes.c_char_p]),
            "ggml_gallocr_new": (P, [P]),
            "ggml_gallocr_alloc_graph": (ctypes.c_bool, [P, P]),
            "ggml_gallocr_free": (None, [P]),
        },
        cpu: {
            "ggml_cpu_init": (None, []),
            "ggml_backend_cpu_init": (P, []),
            "ggml_backend_cpu_set_n_threads": (None, [P, ctypes.c_int]),
            "ggml_backend_cpu_buffer_type": (P, []),
            "ggml_backend_cpu_reg": (P, []),
        },
    }
    for lib, table in protos.items():
        for name, (restype, argtypes) in table.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    cpu.ggml_cpu_init()
    _LIBS = (base, cpu)
    return _LIBS


def available() -> bool:
    """True when llama-cpp-python (with its bundled ggml) is installed."""
    try:
        _libs()
        return True
    except (ImportError, OSError, AttributeError):
        return False


def buffer_types() -> list[str]:
    """Names of the weight buffers this build of llama.cpp offers here ("cpu" always)."""
    base, cpu = _libs()
    names = ["cpu"]
    found = {base.ggml_backend_buft_name(b).decode() for b in _extra_bufts(base, cpu)}
    names += [k for k, v in BUFFER_NAMES.items() if v in found]
    return names


def _extra_bufts(base: ctypes.CDLL, cpu: ctypes.CDLL) -> list[int]:
    reg = cpu.ggml_backend_cpu_reg()
    dev = base.ggml_backend_reg_dev_get(reg, 0)
    addr = base.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
    if not addr:
        return []
    get = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(addr)
    arr, out, i = get(dev), [], 0
    while arr and arr[i]:
        out.append(arr[i])
        i += 1
    return out


class GgmlQ4Linear:
    """y = x @ W^T with W stored as llama.cpp Q4_0 in the chosen buffer; one graph per row count."""

    def __init__(self, w: torch.Tensor, buffer: str = "cpu", threads: int = 1):
        base, cpu = _libs()
        n, k = w.shape
        if k % Q4_0_BLOCK:
            raise ValueError(f"w: Q4_0 needs in_features divisible by {Q4_0_BLOCK}, got {k}")
        if buffer == "cpu":
            buft = cpu.ggml_backend_cpu_buffer_type()
        else:
            want = BUFFER_NAMES.get(buffer)
            if want is None:
                raise ValueError(f"buffer: expected 'cpu', 'repack' or 'amx', got {buffer!r}")
            match = [b for b in _extra_bufts(base, cpu) if base.ggml_backend_buft_name(b).decode() == want]
            if not match:
                raise ValueError(f"buffer: this llama.cpp build has no {want} buffer type here")
            buft = match[0]
        self._base, self._cpu, self.n, self.k = base, cpu, n, k
        self._owned: list[tuple] = []  # (free function, handle), freed in reverse order
        self._ctx_w = self._own(base.ggml_free, base.ggml_init(_InitParams(4 * base.ggml_tensor_overhead(), None, True)))
        self._w = base.ggml_new_tensor_2d(self._ctx_w, GGML_TYPE_Q4_0, k, n)
        self._own(base.ggml_backend_buffer_free, base.ggml_backend_alloc_ctx_tensors_from_buft(self._ctx_w, buft))
        q = torch.empty(base.ggml_row_size(GGML_TYPE_Q4_0, k) * n, dtype=torch.uint8)
        w32 = w.detach().float().contiguous()
        base.ggml_quantize_chunk(GGML_TYPE_Q4_0, w32.data_ptr(), q.data_ptr(), 0, n, k, None)
        base.ggml_backend_tensor_set(self._w, q.data_ptr(), 0, q.numel())  # repack/amx convert here
        self.nbytes = q.numel()
        self._backend = self._own(base.ggml_backend_free, cpu.ggml_backend_cpu_init())
        cpu.ggml_backend_cpu_set_n_threads(self._backend, threads)
        self._graphs: dict[int, tuple] = {}

    def _own(self, free, handle):
        if not handle:
            raise RuntimeError("llama.cpp: allocation failed")
        self._owned.append((free, handle))
        return handle

    def _graph(self, m: int) -> tuple:
        """(graph, x tensor, y tensor, output) for m rows, built once."""
        if m not in self._graphs:
            b, cpu_buft = self._base, self._cpu.ggml_backend_cpu_buffer_type()
            overhead = b.ggml_tensor_overhead()
            ctx_x = self._own(b.ggml_free, b.ggml_init(_InitParams(4 * overhead, None, True)))
            x = b.ggml_new_tensor_2d(ctx_x, GGML_TYPE_F32, self.k, m)
            self._own(b.ggml_backend_buffer_free, b.ggml_backend_alloc_ctx_tensors_from_buft(ctx_x, cpu_buft))
            ctx_g = self._own(b.ggml_free, b.ggml_init(_InitParams(16 * overhead + b.ggml_graph_overhead(), None, True)))
            y = b.ggml_mul_mat(ctx_g, self._w, x)
            graph = b.ggml_new_graph(ctx_g)
            b.ggml_build_forward_expand(graph, y)
            galloc = self._own(b.ggml_gallocr_free, b.ggml_gallocr_new(cpu_buft))
            if not b.ggml_gallocr_alloc_graph(galloc, graph):
                raise RuntimeError("llama.cpp: graph allocation failed")
            self._graphs[m] = (graph, x, y, torch.empty(m, self.n))
        return self._graphs[m]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.k or x.dtype != torch.float32:
            raise ValueError(f"x: expected fp32 [m, {self.k}], got {x.dtype} {list(x.shape)}")
        b = self._base
        graph, xt, yt, out = self._graph(x.shape[0])
        xc = x.contiguous()
        b.ggml_backend_tensor_set(xt, xc.data_ptr(), 0, xc.numel() * 4)
        if b.ggml_backend_graph_compute(self._backend, graph) != 0:
            raise RuntimeError("llama.cpp: graph compute failed")
        b.ggml_backend_tensor_get(yt, out.data_ptr(), 0, out.numel() * 4)
        return out

    def __del__(self):
        for free, handle in reversed(getattr(self, "_owned", [])):
            free(handle)
        self._owned = []
