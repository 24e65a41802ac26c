"""The vLLM classes of the torch_lowbit plugin (how they load and run: vllm_plugin.py). This
module imports vLLM; vllm_plugin.register() imports it from inside vLLM's processes. The
classes are module-level because vLLM pickles the quantization config to its engine process."""
from __future__ import annotations

import re

from typing import Any

import torch
from torch.nn import Parameter
from vllm.model_executor.layers.linear import LinearBase, LinearMethodBase, UnquantizedLinearMethod
from vllm.model_executor.layers.quantization.base_config import QuantizationConfig
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
from vllm.model_executor.models.utils import WeightsMapper
from vllm.model_executor.utils import set_weight_attrs

from torch_lowbit import dispatch
from torch_lowbit.checkpoint_checks import QUANT_METHOD, check_quantization_config
from torch_lowbit.format import QuantizedWeight, padded_layout, panel_major
from torch_lowbit.integrations.vllm_plugin import SCALE_DTYPES, linear_settings, planes_as_rows


class TorchLowbitLinearMethod(LinearMethodBase):
    """One vLLM linear layer (a fused one too) on torch_lowbit's bcq_linear op."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.bits, self.group_size, self.method = settings["bits"], settings["group_size"], settings["method"]
        self.scale_dtype = SCALE_DTYPES[settings["scale_dtype"]]

    def create_weights(self, layer: torch.nn.Module, input_size_per_partition: int, output_partition_sizes: list[int],
                       input_size: int, output_size: int, params_dtype: torch.dtype, **extra_weight_attrs) -> None:
        k, n = input_size_per_partition, sum(output_partition_sizes)
        if k != input_size and (self.group_size == -1 or k % self.group_size):
            raise ValueError(
                f"tensor parallel: {type(layer).__name__} splits K={input_size} into {k} per rank, which is not a whole number "
                f"of groups (group_size={self.group_size}); use a tensor-parallel size that divides K into whole groups"
            )
        kp, g = padded_layout(k, self.group_size)
        layer_loader = extra_weight_attrs.pop("weight_loader")
        # A lone checkpoint tensor spans output_size rows before vLLM cuts this rank's share;
        # cut the panel padding off first (fused layers' loaders cut each shard themselves).
        whole_rows = output_size if len(output_partition_sizes) == 1 else None
        if isinstance(layer, ParallelLMHead):
            layer_loader, whole_rows = _lm_head_loader(layer), None

        def load_planes(param: Parameter, loaded: torch.Tensor, *shard_id) -> None:
            rows = planes_as_rows(loaded, self.bits, "planes")
            layer_loader(param, rows if whole_rows is None else rows[:, :whole_rows], *shard_id)

        tensors = {
            "planes": (torch.empty(self.bits, n, kp // 8, dtype=torch.uint8), {"output_dim": 1, "input_dim": 2, "weight_loader": load_planes}),
            "alpha": (torch.empty(self.bits, kp // g, n, dtype=self.scale_dtype), {"output_dim": 2, "input_dim": 1, "weight_loader": layer_loader}),
            "offset": (torch.empty(kp // g, n, dtype=self.scale_dtype), {"output_dim": 1, "input_dim": 0, "weight_loader": layer_loader}),
        }
        for name, (tensor, attrs) in tensors.items():
            param = Parameter(tensor, requires_grad=False)
            set_weight_attrs(param, {**extra_weight_attrs, **attrs})
            layer.register_parameter(name, param)
        layer.torch_lowbit_shape = (n, k)

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        layer.planes = Parameter(panel_major(layer.planes.data), requires_grad=False)
        # Checks every shape against the others once, as any QuantizedWeight is checked.
        qw = QuantizedWeight(layer.planes.data, layer.alpha.data, layer.offset.data, layer.torch_lowbit_shape, self.group_size, self.method)
        layer.torch_lowbit_kg = (qw.in_features, qw.effective_group_size)
        # On CPU the kernel family does not depend on the row count: resolve it here, outside
        # the graph vLLM compiles. On CUDA it does (CUDA C++ or Triton by rows): chosen per call.
        device = layer.planes.device
        layer.torch_lowbit_op = dispatch.resolve("auto", device, "bcq_linear") if device.type == "cpu" else None

    def apply(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        k, g = layer.torch_lowbit_kg
        x2 = x.reshape(-1, k)
        op = layer.torch_lowbit_op or dispatch.resolve("auto", x.device, "bcq_linear", x2.shape[0])
        y = op(x2, layer.planes, layer.alpha, layer.offset, k, g, bias)
        return y.reshape(*x.shape[:-1], y.shape[-1])

def _lm_head_loader(layer: ParallelLMHead):
    """vLLM's ParallelLMHead pads the vocabulary (to 64) and cuts it by rank; its own loader
    assumes the vocabulary on dim 0, ours lie on each tensor's output_dim: this rank's rows of
    the checkpoint go first, the padding rows get zero scales (vLLM drops their logits)."""
    start = layer.shard_indices.org_vocab_start_index
    count = layer.shard_indices.org_vocab_end_index - start

    def load(param: Parameter, loaded: torch.Tensor, *shard_id) -> None:
        dim = param.output_dim
        param.data.zero_()
        param.data.narrow(dim, 0, count).copy_(loaded.narrow(dim, start, count))

    return load


class TorchLowbitVllmConfig(QuantizationConfig):
    """A checkpoint's torch_lowbit quantization_config, as vLLM asks for it."""

    def __init__(self, quantization_config: dict[str, Any]) -> None:
        super().__init__()
        self.modules = {name: [entry] for name, entry in quantization_config["modules"].items()}
        self.non_persistent_buffers = list(quantization_config.get("non_persistent_buffers", []))

    def get_name(self) -> str:
        return QUANT_METHOD

    def get_supported_act_dtypes(self) -> list[torch.dtype]:
        return [torch.bfloat16, torch.float16, torch.float32]

    @classmethod
    def get_min_capability(cls) -> int:
        return 80  # the CUDA kernels are built for sm_80 and newer

    @staticmethod
    def get_config_filenames() -> list[str]:
        return []  # the settings live in config.json's quantization_config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TorchLowbitVllmConfig":
        return cls(check_quantization_config(config))

    def apply_vllm_mapper(self, hf_to_vllm_mapper) -> None:
        # vLLM renames some models' modules; keep the HF names and add the renamed ones.
        renamed: dict[str, list] = {}
        for name, entries in self.modules.items():
            new = hf_to_vllm_mapper.map_name(name)
            if new is not None and new != name:
                renamed.setdefault(new, []).extend(entries)
        for name, entries in renamed.items():
            self.modules.setdefault(name, []).extend(entries)

    def get_checkpoint_weight_mapper(self) -> WeightsMapper:
        # torch_lowbit.save also writes the non-persistent buffers (rotary inv_freq and the like)
        # so load() restores a model exactly; vLLM's models compute their own and have no such names.
        skip = {re.compile(f"^{re.escape(name)}$"): None for name in self.non_persistent_buffers}
        return QuantizationConfig.get_checkpoint_weight_mapper() | WeightsMapper(orig_to_new_regex=skip)

    def get_quant_method(self, layer: torch.nn.Module, prefix: str):
        if isinstance(layer, ParallelLMHead):  # a low-bit lm_head (patch's default: 6 bits) runs as a linear layer
            settings = linear_settings(self.modules, prefix, {})
            return None if settings is None else TorchLowbitLinearMethod(settings)
        if not isinstance(layer, LinearBase):
            return None
        settings = linear_settings(self.modules, prefix, self.packed_modules_mapping)
        return UnquantizedLinearMethod() if settings is None else TorchLowbitLinearMethod(settings)

