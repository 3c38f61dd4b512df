"""Show the platform, devices, package versions, and which backend of each operation runs here.

For each operation and backend: "ok", or why not (no GPU, no ROCm, not implemented yet...).
"""
from __future__ import annotations

import importlib
import json
import os
import platform as _pyplatform
import sys

OPS = ("prefill", "decode", "merge_state", "merge_states")
# Where each backend's implementation of an operation lives, to say why one is not registered.
_MODULES = {
    "triton": {"prefill": "attn.triton_kernels.prefill", "decode": "attn.triton_kernels.decode",
               "merge_state": "attn.triton_kernels.merge", "merge_states": "attn.triton_kernels.merge"},
    "hip": {"decode": "attn.hip.backend"},
}
_PACKAGES = ("torch", "triton", "numpy", "hip-python", "cuda-python", "cuda-bindings", "nvidia-cuda-nvrtc-cu12",
             "nvidia-cuda-nvrtc", "tqdm", "matplotlib")


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _import_error(module: str) -> str:
    try:
        importlib.import_module(module)
        return ""
    except Exception as e:                      # noqa: BLE001 (reported, not handled)
        return f"{type(e).__name__}: {e}"


def devices() -> list[dict]:
    import torch
    out = []
    if not torch.cuda.is_available():
        return out
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        arch = getattr(p, "gcnArchName", "").split(":")[0] if torch.version.hip else f"sm_{p.major}{p.minor}"
        out.append({"index": i, "name": p.name, "arch": arch, "multiprocessors": p.multi_processor_count,
                    "memory_gib": round(p.total_memory / 2 ** 30, 1)})
    return out


def hip_status() -> tuple[bool, str]:
    try:
        from attn.hip import backend
    except Exception as e:                      # noqa: BLE001
        return False, f"attn.hip.backend not importable ({type(e).__name__}: {e})"
    try:
        return backend.status()
    except Exception as e:                      # noqa: BLE001
        return False, f"attn.hip.backend.status() failed: {type(e).__name__}: {e}"


def backends(example) -> dict[str, dict[str, str]]:
    """{op: {backend: "ok" or the reason it cannot run on example's device}}."""
    from attn import dispatch
    table = {}
    for op in OPS:
        impls = dispatch.implementations(op)
        row = {}
        for name in dispatch.BACKENDS:
            if name in impls:
                try:
                    ok, why = impls[name].available(example)
                except Exception as e:          # noqa: BLE001
                    ok, why = False, f"{type(e).__name__}: {e}"
                row[name] = "ok" if ok else why
            else:
                module = _MODULES.get(name, {}).get(op)
                err = _import_error(module) if module else ""
                row[name] = ("not implemented" if module is None else
                             f"not registered: {err}" if err else "not registered")
        table[op] = row
    return table


def collect() -> dict:
    import torch

    from attn import platform
    plat = platform.get()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    example = torch.empty(1, device=dev)
    versions = {p: _version(p) for p in _PACKAGES}
    versions["attn"] = _version("attn")
    versions["python"] = _pyplatform.python_version()
    versions["torch_cuda"] = torch.version.cuda
    versions["torch_hip"] = torch.version.hip
    hip_ok, hip_why = hip_status()
    return {
        "platform": {"vendor": plat.vendor, "arch": plat.arch, "warp_size": plat.warp_size,
                     "multiprocessors": plat.num_sms, "device": plat.device_name,
                     "triton_interpreter": platform.interpreter_active()},
        "devices": devices(),
        "versions": versions,
        "backends": backends(example),
        "hip": {"ok": hip_ok, "reason": hip_why},
        "write_kv": {"triton": "ok" if platform.triton_runs_on(example)[0] else platform.triton_runs_on(example)[1],
                     "torch": "ok"},
        "os": f"{_pyplatform.system()} {_pyplatform.release()} ({_pyplatform.machine()})",
        "executable": sys.executable,
    }


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    p = info["platform"]
    print(f"attn {info['versions']['attn'] or '(not installed)'} on {info['os']}, python {info['versions']['python']}")
    print(f"platform: vendor={p['vendor']} arch={p['arch']} warp_size={p['warp_size']} "
          f"multiprocessors={p['multiprocessors']} device={p['device']!r} "
          f"triton_interpreter={'on' if p['triton_interpreter'] else 'off'}")
    if info["devices"]:
        for d in info["devices"]:
            print(f"  gpu {d['index']}: {d['name']} ({d['arch']}, {d['multiprocessors']} SMs/CUs, "
                  f"{d['memory_gib']} GiB)")
    else:
        print("  no GPU: kernels run on the CPU through the Triton interpreter (TRITON_INTERPRET=1), "
              "attn.* uses the torch reference by default")
    v = info["versions"]
    print("versions: " + ", ".join(f"{k}={v[k] or '-'}" for k in
                                   ("torch", "torch_cuda", "torch_hip", "triton", "numpy", "hip-python",
                                    "cuda-python", "cuda-bindings", "nvidia-cuda-nvrtc-cu12")))
    print("backends (ok, or why not here):")
    width = max(len(op) for op in info["backends"])
    for op, row in info["backends"].items():
        for name, status in row.items():
            print(f"  {op:<{width}}  {name:<6}  {status}")
    print(f"  {'write_kv':<{width}}  triton  {info['write_kv']['triton']}")
    h = info["hip"]
    print(f"hip launcher: {'ok' if h['ok'] else 'unavailable'}{': ' + h['reason'] if h['reason'] else ''}")
    if os.environ.get("TRITON_INTERPRET") and not info["devices"]:
        print("note: TRITON_INTERPRET is set: Triton kernels run interpreted on CPU tensors (slow, small shapes)")
    return 0
