"""Registers torch_lowbit with transformers' quantizer registry as soon as transformers loads
that registry, without importing transformers (or its ~2 s quantizer stack) from
`import torch_lowbit`: a meta-path finder waits for `transformers.quantizers.auto`, which
transformers imports before any from_pretrained can run."""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_TARGET = "transformers.quantizers.auto"


def _register() -> None:
    module = sys.modules.get("torch_lowbit.integrations.hf_quantizer")
    if module is not None and not hasattr(module, "register"):
        return  # hf_quantizer's own import got us here; it registers itself when it finishes
    from torch_lowbit.integrations import hf_quantizer

    hf_quantizer.register()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # once; and so the lookup below finds the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    if _TARGET in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
