"""Where attn runs: vendor, architecture, warp size, multiprocessor count.

Every other module asks here, once, at config or plan time; no kernel asks on its hot path.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Platform:
    vendor: str          # "nvidia", "amd" or "cpu"
    arch: str            # "sm_90", "gfx942", "cpu"
    warp_size: int       # 32 on NVIDIA, 64 on AMD CDNA; 1 on the CPU
    num_sms: int         # streaming multiprocessors / compute units
    device_name: str     # as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"

    @property
    def is_gpu(self) -> bool:
        return self.vendor != "cpu"

    @property
    def config_key(self) -> str:
        """Normalized device name for attn/configs/<vendor>/<key>.json."""
        return "".join(c if c.isalnum() else "_" for c in self.device_name).strip("_")


def interpreter_active() -> bool:
    """True when Triton runs kernels through its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def as_device(device) -> torch.device:
    """A torch.device with its index filled in ("cuda" -> cuda:<current>), so equal devices compare equal;
    None: the current GPU if there is one, else the CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> "bfloat16": the dtype key of config files and benchmark tables."""
    return str(dtype).replace("torch.", "")


def gpu_available() -> bool:
    return torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def get(device_index: int | None = None) -> Platform:
    """The platform of a GPU (the current one by default), or the CPU when there is none."""
    if not torch.cuda.is_available():
        return Platform("cpu", "cpu", 1, os.cpu_count() or 1, "cpu")
    idx = torch.cuda.current_device() if device_index is None else device_index
    props = torch.cuda.get_device_properties(idx)
    if torch.version.hip is not None:
        # gcnArchName carries feature flags ("gfx90a:sramecc+:xnack-"): keep the target only.
        arch = getattr(props, "gcnArchName", "gfx000").split(":")[0]
        warp = getattr(props, "warp_size", 64)
        return Platform("amd", arch, warp, props.multi_processor_count, props.name)
    return Platform("nvidia", f"sm_{props.major}{props.minor}", 32,
                    props.multi_processor_count, props.name)


def for_tensor(t: torch.Tensor) -> Platform:
    if t.device.type == "cuda":
        return get(t.device.index)
    return get_cpu()


@functools.lru_cache(maxsize=None)
def get_cpu() -> Platform:
    return Platform("cpu", "cpu", 1, os.cpu_count() or 1, "cpu")


def triton_runs_on(t: torch.Tensor) -> tuple[bool, str]:
    """Whether a Triton kernel can run on tensors on t's device, and why not."""
    if t.device.type == "cuda":
        return True, ""
    if interpreter_active():
        return True, ""
    return False, (f"tensors are on {t.device.type} and Triton needs a GPU; set TRITON_INTERPRET=1 "
                   "to run the Triton kernels on the CPU through the interpreter")
