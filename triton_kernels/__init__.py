"""Portable Triton kernels (installed as attn.triton_kernels): one kernel per operation, layouts as
strides and constexprs. Each module holds a kernel and its launcher."""
