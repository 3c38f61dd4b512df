"""The two device toolchains behind attn.hip, loaded lazily: hip-python (hiprtc + HIP module API)
on ROCm, cuda-python (NVRTC + driver API) on CUDA. `import attn` never imports either.

Debian's ROCm 5.2 keeps hiprtc inside libamdhip64.so.5 and ships no libhiprtc.so, while
hip-python dlopens "libhiprtc.so" by name. Before hip-python's first hiprtc call we point its
loader (the module global hip.chiprtc.DLL) at a library that really exports hiprtc: one already
loaded in this process, a libhiprtc.so.N beside the HIP runtime, or libamdhip64 itself. The HIP
runtime is likewise pinned to the copy already loaded (torch's on ROCm), so one process never
holds two HIP runtimes. Nothing is asked of the user: no symlink, no LD_LIBRARY_PATH.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os

_LIB_DIRS = ("/opt/rocm/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


class ToolchainMissing(RuntimeError):
    """hip-python / cuda-python / a device compiler library is not installed here."""


# ------------------------------------------------------------------------- library discovery
def _loaded_libs() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if ".so" in line}
        return sorted(p for p in paths if p.startswith("/"))
    except OSError:
        return []


def _exports(path: str, symbol: str) -> bool:
    try:
        return hasattr(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL), symbol)
    except OSError:
        return False


def _rocm_dirs() -> list[str]:
    dirs = []
    for var in ("ROCM_PATH", "ROCM_HOME", "HIP_PATH"):
        if os.environ.get(var):
            dirs.append(os.path.join(os.environ[var], "lib"))
    for p in _loaded_libs():
        if "libamdhip64" in os.path.basename(p):
            dirs.append(os.path.dirname(p))
    return dirs + list(_LIB_DIRS)


def _candidates(stem: str) -> list[str]:
    loaded = [p for p in _loaded_libs() if os.path.basename(p).startswith(stem + ".so")]
    found = []
    for d in _rocm_dirs():
        found += sorted(glob.glob(os.path.join(d, stem + ".so*")), key=len)
    return loaded + found


@functools.lru_cache(maxsize=None)
def find_amdhip() -> str | None:
    """Path of the HIP runtime (the one loaded already, if any)."""
    for p in _candidates("libamdhip64"):
        if _exports(p, "hipModuleLoadData"):
            return p
    return None


@functools.lru_cache(maxsize=None)
def find_hiprtc() -> str | None:
    """Path of a library exporting hiprtc: libhiprtc.so.N, or libamdhip64 (ROCm < 6 bundles it)."""
    for p in _candidates("libhiprtc"):
        if _exports(p, "hiprtcCreateProgram"):
            return p
    for p in _candidates("libamdhip64"):
        if _exports(p, "hiprtcCreateProgram"):
            return p
    return None


# ------------------------------------------------------------------------- hip-python
@functools.lru_cache(maxsize=None)
def _hip_python():
    try:
        import hip.chip as chip
        import hip.chiprtc as chiprtc
    except ImportError as e:
        raise ToolchainMissing("hip-python is not installed (pip install 'attn[hip]'): " + str(e)) from None
    rtc_path, hip_path = find_hiprtc(), find_amdhip()
    if rtc_path is None:
        raise ToolchainMissing("no library exporting hiprtc found (install ROCm, or on Debian: apt-get install "
                               "libamdhip64-5 libamdhip64-dev); searched " + ", ".join(_rocm_dirs()))
    # hip-python reads these module globals on its first call into each library.
    chiprtc.DLL = rtc_path.encode()
    if hip_path is not None:
        chip.DLL = hip_path.encode()
    from hip import hip, hiprtc
    return hip, hiprtc


def hiprtc_version() -> str:
    _, hiprtc = _hip_python()
    err, major, minor = hiprtc.hiprtcVersion()
    if err != hiprtc.hiprtcResult.HIPRTC_SUCCESS:
        raise ToolchainMissing(f"hiprtc is not usable: hiprtcVersion failed with {err!r} ({find_hiprtc()})")
    return f"hiprtc-{major}.{minor}:{os.path.basename(find_hiprtc() or '')}"


def hiprtc_compile(src: str, name: str, headers: dict[str, str], opts: list[str]) -> tuple[bytes, str]:
    """Compile HIP source to a code object; raises CompileError with the log."""
    from .compile import CompileError
    _, hiprtc = _hip_python()
    ok = hiprtc.hiprtcResult.HIPRTC_SUCCESS
    hnames = list(headers)
    err, prog = hiprtc.hiprtcCreateProgram(src.encode(), name.encode(), len(hnames),
                                           [headers[h].encode() for h in hnames], [h.encode() for h in hnames])
    if err != ok:
        raise CompileError(f"hiprtcCreateProgram failed: {err}")
    try:
        bopts = [o.encode() for o in opts]
        (err,) = hiprtc.hiprtcCompileProgram(prog, len(bopts), bopts)
        _, n = hiprtc.hiprtcGetProgramLogSize(prog)
        log = bytearray(n)
        if n:
            hiprtc.hiprtcGetProgramLog(prog, log)
        log = bytes(log).rstrip(b"\0").decode(errors="replace")
        if err != ok:
            raise CompileError(f"hiprtc failed to compile {name} ({' '.join(opts)}): {err}", log)
        _, n = hiprtc.hiprtcGetCodeSize(prog)
        code = bytearray(n)
        hiprtc.hiprtcGetCode(prog, code)
        return bytes(code), log
    finally:
        hiprtc.hiprtcDestroyProgram(prog.createRef())


# ------------------------------------------------------------------------- cuda-python
@functools.lru_cache(maxsize=None)
def _cuda_python():
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError:
        try:
            from cuda import cuda as driver, nvrtc  # cuda-python < 12.6 names
        except ImportError as e:
            raise ToolchainMissing("cuda-python is not installed (pip install 'attn[cuda]'): " + str(e)) from None
    return driver, nvrtc


def nvrtc_version() -> str:
    _, nvrtc = _cuda_python()
    try:
        err, major, minor = nvrtc.nvrtcVersion()
    except RuntimeError as e:       # libnvrtc not found: the nvidia-cuda-nvrtc wheel is missing
        raise ToolchainMissing(f"NVRTC library not found (pip install nvidia-cuda-nvrtc-cu12): {e}") from None
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise ToolchainMissing(f"NVRTC is not usable: nvrtcVersion failed with {err!r}")
    return f"nvrtc-{major}.{minor}"


def nvrtc_compile(src: str, name: str, headers: dict[str, str], opts: list[str],
                  output: str = "cubin") -> tuple[bytes, str]:
    """Compile CUDA source (the HIP source through prelude.h) to a cubin (or, with output="ptx" and
    a --gpu-architecture=compute_XX option, to PTX text); raises CompileError."""
    from .compile import CompileError
    _, nvrtc = _cuda_python()
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    hnames = list(headers)
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), name.encode(), len(hnames),
                                         [headers[h].encode() for h in hnames], [h.encode() for h in hnames])
    if err != ok:
        raise CompileError(f"nvrtcCreateProgram failed: {err}")
    try:
        bopts = [o.encode() for o in opts]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(bopts), bopts)
        _, n = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * n
        if n:
            nvrtc.nvrtcGetProgramLog(prog, log)
        log = log.rstrip(b"\0").decode(errors="replace")
        if err != ok:
            raise CompileError(f"NVRTC failed to compile {name} ({' '.join(opts)}): {err}", log)
        size, get = ((nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX) if output == "ptx"
                     else (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN))
        _, n = size(prog)
        code = b" " * n
        get(prog, code)
        return code, log
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


# ------------------------------------------------------------------------- modules and launches
class Kernel:
    """A loaded kernel function; launch() packs arguments and launches on a stream, no sync."""

    def __init__(self, vendor: str, fn, name: str):
        self.vendor, self.fn, self.name = vendor, fn, name

    def launch(self, grid, block, args, stream: int):
        # kernelParams: an array of pointers to each argument's value (kept alive over the call).
        vals = list(args)
        ptrs = (ctypes.c_void_p * len(vals))(*[ctypes.addressof(v) for v in vals])
        if self.vendor == "amd":
            hip, _ = _hip_python()
            (err,) = hip.hipModuleLaunchKernel(self.fn, *grid, *block, 0, stream, ctypes.addressof(ptrs), None)
            if err != hip.hipError_t.hipSuccess:
                raise RuntimeError(f"hipModuleLaunchKernel({self.name}) failed: {err}")
        else:
            driver, _ = _cuda_python()
            (err,) = driver.cuLaunchKernel(self.fn, *grid, *block, 0, driver.CUstream(stream),
                                           ctypes.addressof(ptrs), 0)
            if err != driver.CUresult.CUDA_SUCCESS:
                raise RuntimeError(f"cuLaunchKernel({self.name}) failed: {err}")


    def max_active_blocks(self, block_threads: int) -> int:
        """Work-groups of block_threads that fit on one multiprocessor at once (registers, shared
        memory), from the driver's occupancy calculator; 0 when the driver cannot say."""
        try:
            if self.vendor == "amd":
                hip, _ = _hip_python()
                err, n = hip.hipModuleOccupancyMaxActiveBlocksPerMultiprocessor(self.fn, block_threads, 0)
                ok = err == hip.hipError_t.hipSuccess
            else:
                driver, _ = _cuda_python()
                err, n = driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(self.fn, block_threads, 0)
                ok = err == driver.CUresult.CUDA_SUCCESS
            return int(n) if ok else 0
        except Exception:  # an old binding without the call: the caller assumes one
            return 0


def load_module(vendor: str, binary: bytes, names, device_index: int) -> dict[str, Kernel]:
    """Load a code object / cubin into the current context of device_index; return its kernels."""
    if vendor == "amd":
        hip, _ = _hip_python()
        err, mod = hip.hipModuleLoadData(binary)
        if err != hip.hipError_t.hipSuccess:
            raise RuntimeError(f"hipModuleLoadData failed on device {device_index}: {err}")
        out = {}
        for n in names:
            err, fn = hip.hipModuleGetFunction(mod, n.encode())
            if err != hip.hipError_t.hipSuccess:
                raise RuntimeError(f"hipModuleGetFunction({n}) failed: {err}")
            out[n] = Kernel("amd", fn, n)
        return out
    driver, _ = _cuda_python()
    ok = driver.CUresult.CUDA_SUCCESS
    err, ctx = driver.cuCtxGetCurrent()
    if err != ok or int(ctx) == 0:
        # torch made the primary context current on its own threads; other threads need it set.
        err, dev = driver.cuDeviceGet(device_index)
        err, ctx = driver.cuDevicePrimaryCtxRetain(dev)
        if err != ok:
            raise RuntimeError(f"cuDevicePrimaryCtxRetain failed: {err}")
        driver.cuCtxSetCurrent(ctx)
    err, mod = driver.cuModuleLoadData(binary)
    if err != ok:
        raise RuntimeError(f"cuModuleLoadData failed on device {device_index}: {err}")
    out = {}
    for n in names:
        err, fn = driver.cuModuleGetFunction(mod, n.encode())
        if err != ok:
            raise RuntimeError(f"cuModuleGetFunction({n}) failed: {err}")
        out[n] = Kernel("nvidia", fn, n)
    return out
