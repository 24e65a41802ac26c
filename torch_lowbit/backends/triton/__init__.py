"""The Triton family: the kernels of the top-level triton_kernels/ folder (installed as
torch_lowbit.triton_kernels, never as a top-level `triton_kernels`) registered as the
`triton_<op>` ops (ops.py), and the tile model that sizes their tiles (tile_model.py).
Importing this package imports neither triton nor the kernels; ops.py does, on first use.
"""
