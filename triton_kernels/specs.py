"""Compile specs: every configuration of every Triton kernel that attn can launch, as data.

The compile matrix (ci/compile_matrix.py) compiles each spec ahead of time, on a machine without a
GPU, for every target it names, and fails on a compile error, a register spill or shared memory /
LDS over the target's limit. A configuration that a launcher or a tuned config can pick but that
no spec names is not checked anywhere before it reaches a user's GPU.

Contract for kernel modules (attn.triton_kernels.<op>)
------------------------------------------------------
Each module that holds a kernel defines a function ``compile_specs() -> list[KernelSpec]``.
`all_specs()` imports every module of this package and calls it. The list must cover each
*distinct compiled variant* the launcher or a tuned config can produce, i.e. every combination of

- constexprs (block sizes, layout branches such as the vLLM split factor, feature flags such as
  CAUSAL / SOFTCAP / HAS_LSE, head-dim blocks),
- argument types that change the binary (element types of pointers: fp16 / bf16 / fp32 caches,
  int32 / int64 index tensors),
- launch options (num_warps, num_stages; on AMD waves_per_eu, matrix_instr_nonkdim, kpack),

that it can reach. Layouts that differ only in strides (NHD, HND) compile to one binary: name
them in one spec's `config` label ("NHD|HND") rather than repeating it.

Derive specs from the launcher's own choice wherever possible: keep the config choice in a plain
function (e.g. ``_config(head_dim, kv_heads, dtype, platform)``) that both the launcher and
``compile_specs()`` call, so the two cannot drift. Tuned configs (attn/configs/<vendor>/*.json)
add their entries with ``targets`` restricted to the vendor (or arch) they were tuned for.

Writing one::

    from .specs import KernelSpec, signature

    def compile_specs():
        out = []
        for dt in ("fp16", "bf16"):
            for block_d in (64, 128, 256):
                cx = dict(BLOCK_D=block_d, CAUSAL=True)
                out.append(KernelSpec(
                    kernel="decode", config=f"{dt}/d{block_d}/causal", fn=_decode_kernel,
                    signature=signature(_decode_kernel, cx, q=f"*{dt}", k=f"*{dt}", lse="*fp32",
                                        kv_indices="*i32", sm_scale="fp32"),
                    constexprs=cx, options=dict(num_warps=4, num_stages=2, waves_per_eu=2)))
        return out

`signature()` types every non-constexpr argument: the keyword arguments you give, "i32" for the
rest (strides, sizes, counts), "constexpr" for the constexprs. Type strings are Triton's:
"*fp16", "*bf16", "*fp32", "*i32", "*i64", "i32", "i64", "fp32". A pointer argument that may be
None at launch (an optional lse output) is typed "constexpr" and given the value None in
constexprs, as the JIT specializes it.

Options: `options` is passed to triton.compile for every target; the AMD knobs (waves_per_eu,
matrix_instr_nonkdim, kpack, schedule_hint) are dropped for NVIDIA targets, the NVIDIA one (maxnreg)
for AMD targets. A config that differs between vendors is two specs with disjoint `targets`.

Specialization: the JIT turns an integer argument equal to 1 into a constant (a unit head-dim
stride, a page_size of 1). Where the launcher passes such a 1, put it in constexprs with value 1
(and so "constexpr" in the signature): that is the binary that runs.

Alignment: pointer arguments are compiled as 16-byte aligned (what the JIT sees for torch
allocations, so registers and vectorization match what runs); list extra 16-divisible integer
arguments (strides that are multiples of 16 at run time, e.g. head_dim strides) in `aligned`.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

#: AOT targets: name -> (backend, arch, warp size)
TARGETS: dict[str, tuple[str, Any, int]] = {
    "sm_80": ("cuda", 80, 32),
    "sm_90": ("cuda", 90, 32),
    "gfx90a": ("hip", "gfx90a", 64),
    "gfx942": ("hip", "gfx942", 64),
    "gfx950": ("hip", "gfx950", 64),
}
ALL_TARGETS: tuple[str, ...] = tuple(TARGETS)
NVIDIA_TARGETS: tuple[str, ...] = ("sm_80", "sm_90")
AMD_TARGETS: tuple[str, ...] = ("gfx90a", "gfx942", "gfx950")

#: Options only the AMD backend understands.
AMD_ONLY_OPTIONS = frozenset({"waves_per_eu", "matrix_instr_nonkdim", "kpack", "schedule_hint"})
#: Options only the NVIDIA backend understands (maxnreg: ptxas's per-thread register ceiling).
NVIDIA_ONLY_OPTIONS = frozenset({"maxnreg"})


class Limits(NamedTuple):
    smem_per_block: int      # shared memory / LDS one block (work-group) may use, bytes
    smem_per_sm: int         # per SM / CU, for occupancy
    regs_per_sm: int         # 32-bit registers per SM (NVIDIA); VGPRs per SIMD lane (AMD)
    max_warps_per_sm: int    # NVIDIA: warps per SM; AMD: waves per SIMD


# Hardware facts from the vendors' tuning guides: sm_80 163 KB and sm_90 227 KB opt-in shared memory
# per block; CDNA2/CDNA3 64 KB LDS per CU, CDNA4 (gfx950) 160 KB. AMD occupancy comes from the
# compiler's own "; Occupancy:" line (waves per SIMD, 8 at most on CDNA).
LIMITS: dict[str, Limits] = {
    "sm_80": Limits(163 * 1024, 164 * 1024, 65536, 64),
    "sm_90": Limits(227 * 1024, 228 * 1024, 65536, 64),
    "gfx90a": Limits(64 * 1024, 64 * 1024, 512, 8),
    "gfx942": Limits(64 * 1024, 64 * 1024, 512, 8),
    "gfx950": Limits(160 * 1024, 160 * 1024, 512, 8),
}


def gpu_target(name: str):
    """triton's GPUTarget for a target name ("sm_90", "gfx942", ...)."""
    from triton.backends.compiler import GPUTarget
    backend, arch, warp = TARGETS[name]
    return GPUTarget(backend, arch, warp)


@dataclass(frozen=True)
class KernelSpec:
    """One compiled variant of one kernel.

    kernel      operation / module name ("kv_write", "decode", ...): the matrix's first column
    config      short label of what varies ("vllm/fp16/h8/d128"); unique within `kernel`
    fn          the @triton.jit (or @gluon.jit) function
    signature   {arg: type} for EVERY argument of fn, constexprs typed "constexpr" (see signature())
    constexprs  {name: value}
    options     num_warps, num_stages, and AMD knobs (dropped on NVIDIA)
    targets     which of TARGETS this variant is launched on
    aligned     integer arguments known to be multiples of 16 at run time
    """
    kernel: str
    config: str
    fn: Any
    signature: dict
    constexprs: dict
    options: dict = field(default_factory=lambda: {"num_warps": 4})
    targets: tuple = ALL_TARGETS
    aligned: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.kernel}:{self.config}"

    def options_for(self, target: str) -> dict:
        if TARGETS[target][0] == "cuda":
            return {k: v for k, v in self.options.items() if k not in AMD_ONLY_OPTIONS}
        return {k: v for k, v in self.options.items() if k not in NVIDIA_ONLY_OPTIONS}

    def attrs(self) -> dict:
        """Divisibility hints as the JIT would give them: pointers and `aligned` ints by 16."""
        names = list(self.fn.arg_names)
        hinted = [a for a, t in self.signature.items() if t.startswith("*")] + list(self.aligned)
        return {(names.index(a),): [["tt.divisibility", 16]] for a in hinted}

    def source(self):
        from triton.compiler import ASTSource
        make = ASTSource
        if getattr(self.fn, "is_gluon", lambda: False)():
            from triton.experimental.gluon._runtime import GluonASTSource as make
        return make(self.fn, signature=dict(self.signature), constexprs=dict(self.constexprs), attrs=self.attrs())


def signature(fn, constexprs: dict, default: str = "i32", **types: str) -> dict:
    """The full signature of `fn`: `types` where given, "constexpr" for `constexprs`, else
    `default`. Raises on a name that is not an argument of fn (a typo would otherwise compile a
    different kernel than the one that runs)."""
    names = list(fn.arg_names)
    unknown = sorted((set(types) | set(constexprs)) - set(names))
    if unknown:
        raise ValueError(f"{fn.__name__} has no argument(s) {unknown}; its arguments are {names}")
    params = getattr(fn, "params", None)
    declared = {p.name for p in params if p.is_constexpr} if params else set()
    missing = sorted(declared - set(constexprs))
    if missing:
        raise ValueError(f"{fn.__name__}: constexpr argument(s) {missing} need a value in constexprs")
    return {a: "constexpr" if a in constexprs else types.get(a, default) for a in names}


# ------------------------------------------------------------------------------------------
# Collection


@dataclass
class Collected:
    specs: list
    errors: dict     # module name -> error text (import failed or compile_specs() raised)


def _modules() -> list[str]:
    from attn import triton_kernels
    return sorted(m.name for m in pkgutil.iter_modules(triton_kernels.__path__)
                  if m.name != "specs" and not m.name.startswith("_"))


def collect(extra: list[Callable[[], list]] = ()) -> Collected:
    """Every module's compile_specs(), plus `extra` providers. Errors are kept, not raised: a
    kernel module that fails to import is a compile-matrix failure, reported with the rest."""
    specs, errors = [], {}
    providers = []
    for name in _modules():
        try:
            mod = importlib.import_module(f"attn.triton_kernels.{name}")
        except Exception as e:  # noqa: BLE001 - reported as a matrix failure
            errors[name] = f"import failed: {type(e).__name__}: {e}"
            continue
        if hasattr(mod, "compile_specs"):
            providers.append((name, mod.compile_specs))
    providers += [(getattr(p, "__module__", "extra"), p) for p in extra]
    seen = {}
    for name, provider in providers:
        try:
            got = list(provider())
        except Exception as e:  # noqa: BLE001
            errors[name] = f"compile_specs() raised {type(e).__name__}: {e}"
            continue
        for s in got:
            if s.id in seen:
                errors[name] = f"duplicate spec id {s.id!r}"
            seen[s.id] = s
            specs.append(s)
    return Collected(specs, errors)


def all_specs() -> list:
    """Every KernelSpec of every module (raises if a module failed to provide its specs)."""
    c = collect()
    if c.errors:
        raise RuntimeError("; ".join(f"{m}: {e}" for m, e in c.errors.items()))
    return c.specs


#: The device each target's configs are looked up for (heuristics by arch; tuned files by name).
_TARGET_DEVICES = {
    "sm_80": ("nvidia", 32, 108, "NVIDIA A100-SXM4-80GB"),
    "sm_90": ("nvidia", 32, 132, "NVIDIA H100 80GB HBM3"),
    "gfx90a": ("amd", 64, 110, "AMD Instinct MI250X"),
    "gfx942": ("amd", 64, 304, "AMD Instinct MI300X"),
    "gfx950": ("amd", 64, 256, "AMD Instinct MI355X"),
}


def target_platform(target: str):
    """The attn.platform.Platform a launcher would see on `target` ("sm_80" -> an A100, ...)."""
    from attn.platform import Platform
    vendor, warp, sms, name = _TARGET_DEVICES[target]
    return Platform(vendor, target, warp, sms, name)


@dataclass(frozen=True)
class TunedEntry:
    """One entry of a shipped device file, as a kernel module's compile_specs() needs it."""
    platform: object      # the device the file was tuned on (its name picks the file in lookups)
    label: str            # the spec's config label: device, dtype, head_dim, group, page size, sizes
    dtype: str            # "fp16" / "bf16"
    torch_dtype: str      # the bucket's "float16" / "bfloat16"
    head_dim: int
    group: int
    page_size: int
    family: str           # the bucket's layout family (attn.configs' "layout" key)
    shape: dict           # the size keys (batch, q_len, kv_len) that pick the bucket

    @property
    def layouts(self) -> tuple:
        """The SPEC_LAYOUTS keys whose binaries the entry can launch: a rows-family bucket of
        page size 1 serves token pools and (without a page map, a binary of its own) ragged
        caches; other buckets their family's one layout."""
        from .attention import SPEC_FAMILY
        keys = tuple(lay for lay, fam in SPEC_FAMILY.items() if fam == self.family)
        return keys if self.page_size == 1 else tuple(k for k in keys if k != "ragged")


def tuned_entries(op: str) -> list[TunedEntry]:
    """Every `op` entry of the device files shipped in attn/configs: a kernel module gives each a
    spec for the arch it was tuned on, so what a tuned config can launch is compiled here too.
    Entries without head_dim and dtype (never matched by a lookup) are left out."""
    from attn import configs
    from attn.platform import Platform
    short = {"float16": "fp16", "bfloat16": "bf16"}
    out = []
    for path in sorted(configs._DIR.glob("*/*.json")):
        data = configs.load_file(path)
        arch = data.get("meta", {}).get("arch")
        if arch not in _TARGET_DEVICES:
            continue
        vendor, warp, sms, _ = _TARGET_DEVICES[arch]
        plat = Platform(vendor, arch, warp, sms, data["meta"].get("device", path.stem))
        for e in data.get("ops", {}).get(op, []):
            b = e.get("bucket", {})
            if b.get("dtype") not in short or "head_dim" not in b:
                continue
            shape = {k: b[k] for k in ("batch", "q_len", "kv_len") if k in b}
            group, ps = b.get("group", 1), b.get("page_size", 16)
            family = b.get("layout", configs.BUCKET_DEFAULTS["layout"])
            label = (f"tuned:{plat.config_key}/{short[b['dtype']]}/d{b['head_dim']}/g{group}/p{ps}/"
                     + "x".join(f"{k[0]}{v}" for k, v in shape.items()))
            out.append(TunedEntry(plat, label, short[b["dtype"]], b["dtype"], b["head_dim"], group, ps, family, shape))
    return out


def spec_platform(vendor: str):
    """The platform a spec's heuristic config is looked up for: an H100 or an MI300X."""
    return target_platform("sm_90" if vendor == "nvidia" else "gfx942")


def per_target(config_of) -> list:
    """[(prefix, targets, cfg)]: `config_of(platform)` for every target, targets with equal configs
    together. prefix names the group: the vendor ("nvidia", "amd") when all its targets share the
    config, else the targets ("sm_80", "gfx90a+gfx942"). Launchers choose configs per arch
    (attn.configs.heuristic), so a spec per distinct config per target is what runs."""
    out = []
    for vendor, targets in (("nvidia", NVIDIA_TARGETS), ("amd", AMD_TARGETS)):
        groups: list = []
        for t in targets:
            cfg = config_of(target_platform(t))
            for g in groups:
                if g[1] == cfg:
                    g[0].append(t)
                    break
            else:
                groups.append(([t], cfg))
        for ts, cfg in groups:
            out.append((vendor if len(groups) == 1 else "+".join(ts), tuple(ts), cfg))
    return out
