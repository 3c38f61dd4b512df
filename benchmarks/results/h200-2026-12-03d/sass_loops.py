"""SASS of attention_kernel's KV loops (sm_90, AOT, no GPU): instruction counts of the loops, the
smallest being the unmasked (mid) loop. Used 2026-12-03 (sixth session) for the paged extend's
483-instruction loop against the ragged 407, and the branch exp/paged-address-math's 404.

    python benchmarks/results/h200-2026-12-03d/sass_loops.py        # from the repository root
"""
import os, sys, re, subprocess, collections, triton
sys.path.insert(0, "ci"); import compile_matrix as cm  # noqa: E402
from attn.triton_kernels.attention import compile_spec
from attn.triton_kernels.specs import gpu_target
def build(cfg, layout, ps, kernel="decode", **kw):
    s = compile_spec(kernel, "x", ("sm_90",), "bf16", cfg, group=4, head_dim=128, page_size=ps, layout=layout, **kw)
    k = triton.compile(s.source(), target=gpu_target("sm_90"), options=s.options_for("sm_90"))
    open("/tmp/x.cubin", "wb").write(k.asm["cubin"])
    sass = subprocess.run([os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"), "-sass", "/tmp/x.cubin"], capture_output=True, text=True).stdout
    return k, sass
def loops(sass):
    # instructions between backward branches: find the largest loop body by BRA targets
    lines = [l for l in sass.splitlines() if re.match(r"\s+/\*[0-9a-f]{4,}\*/", l)]
    addr = lambda l: int(re.match(r"\s+/\*([0-9a-f]+)\*/", l).group(1), 16)
    bodies = []
    for i, l in enumerate(lines):
        m = re.search(r"BRA\s+(?:`\(\.L_x_\d+\)|)\s*0x([0-9a-f]+)", l) or re.search(r"BRA .*?(0x[0-9a-f]+)", l)
        if m:
            t = int(m.group(1), 16) if not m.group(1).startswith("0x") else int(m.group(1), 16)
            if t < addr(l):
                body = [x for x in lines if t <= addr(x) <= addr(l)]
                bodies.append(body)
    return bodies
def ops(body):
    c = collections.Counter()
    for l in body:
        m = re.search(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)", l)
        if m: c[m.group(1).split(".")[0]] += 1
    return c


if __name__ == "__main__":
    keys = ["HGMMA", "HMMA", "LDGSTS", "IMAD", "IADD3", "LEA", "SHF", "LDS", "SEL", "ISETP", "FSEL"]
    cases = (
        ("extend p16", "prefill", {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 5, "cache_modifier": ""}, "NHD|HND", 16, {"CAUSAL": True}),
        ("extend pool", "prefill", {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 5, "cache_modifier": ".cg"}, "NHD|HND", 1, {"CAUSAL": True}),
        ("extend ragged", "prefill", {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 5, "cache_modifier": ".cg"}, "ragged", 1, {"CAUSAL": True}),
        ("decode HND 32", "decode", {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 4, "num_stages": 3, "cache_modifier": ".cg"}, "NHD|HND", 16, {}),
        ("decode HND 64", "decode", {"BLOCK_M": 16, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2, "cache_modifier": ".cg"}, "NHD|HND", 16, {}),
        ("decode vllm flat", "decode", {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 4, "num_stages": 5, "cache_modifier": ".cg", "k_by_group": 2}, "vllm", 16, {}))
    for name, kern, cfg, layout, ps, extra in cases:
        k, sass = build(cfg, layout, ps, kern, **extra)
        mid = sorted(loops(sass), key=len)[0]
        met = cm.nvidia_metrics(k, 90)
        c = ops(mid)
        print(f"{name:16s} regs {met['regs']} spill {met['spill']} mid loop {len(mid)} instr",
              {x: c.get(x, 0) for x in keys if c.get(x, 0)}, flush=True)
