"""torch_lowbit: low-bit (1-8 bit) weight-only quantization for PyTorch.

    >>> import torch, torch_lowbit
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    >>> model = torch_lowbit.patch(model, bits=3, group_size=32)
    >>> model(torch.randn(2, 64)).shape
    torch.Size([2, 8])
"""
# The op definitions (schemas, fakes, autograd, reference kernels) first, then the compiled
# extension, which registers the CPU and CUDA kernels under them.
from torch_lowbit import library  # noqa: F401
from torch_lowbit.backends import native as _native

_native.load()

from torch_lowbit import ops  # noqa: E402
from torch_lowbit.backends.native import build_info  # noqa: E402
from torch_lowbit.config import QuantConfig  # noqa: E402
from torch_lowbit.format import FORMAT_VERSION, QuantizedWeight  # noqa: E402
from torch_lowbit.modules import LowBitConv2d, LowBitLinear  # noqa: E402
from torch_lowbit.patch import patch  # noqa: E402
from torch_lowbit.quantize import quantize_weight  # noqa: E402
from torch_lowbit.quantize.synthetic import synthetic_batches  # noqa: E402
from torch_lowbit.serialization import CheckpointError, load, save  # noqa: E402
from torch_lowbit.integrations import transformers_hook as _transformers_hook  # noqa: E402

_transformers_hook.install()  # registers with transformers' quantizers once transformers loads them


def __getattr__(name: str):
    if name == "TorchLowbitConfig":  # imports transformers: only when asked for
        from torch_lowbit.integrations.hf_quantizer import TorchLowbitConfig

        return TorchLowbitConfig
    raise AttributeError(f"module 'torch_lowbit' has no attribute {name!r}")

__version__ = "0.1.0"
__all__ = ["CheckpointError", "FORMAT_VERSION", "load", "save", "LowBitConv2d", "LowBitLinear", "QuantConfig", "QuantizedWeight", "build_info", "ops", "patch", "quantize_weight", "synthetic_batches", "TorchLowbitConfig"]
