"""vLLM-layout decode on the H200: config variants side by side (registers, spills, time, % of copy)."""
import sys, json, torch, attn
from attn import benchutil as bu
from attn.tune import compiled_kernels, default_check
gen = torch.Generator("cuda").manual_seed(0)
B64 = dict(BLOCK_M=16, BLOCK_N=32, num_warps=4, num_stages=3, cache_modifier=".cg", programs_per_sm=2,
           min_chunk_blocks=4, k_by_group=True)
B8 = dict(BLOCK_M=16, BLOCK_N=64, num_warps=4, num_stages=3, cache_modifier=".cg", programs_per_sm=8,
          min_chunk_blocks=4, k_by_group=True)
V64 = [("tuned (by group)", {}), ("flat", dict(k_by_group=2)), ("flat stages 5", dict(k_by_group=2, num_stages=5)),
       ("flat pps 1", dict(k_by_group=2, programs_per_sm=1)), ("flat pps 4", dict(k_by_group=2, programs_per_sm=4)),
       ("flat n64", dict(k_by_group=2, BLOCK_N=64)), ("flat n64 pps 4", dict(k_by_group=2, BLOCK_N=64, programs_per_sm=4)),
       ("flat n16", dict(k_by_group=2, BLOCK_N=16))]
V8 = [("tuned (by group)", {}), ("flat", dict(k_by_group=2)), ("flat n32", dict(k_by_group=2, BLOCK_N=32)),
      ("flat n32 pps 4", dict(k_by_group=2, BLOCK_N=32, programs_per_sm=4)), ("flat stages 5", dict(k_by_group=2, num_stages=5)),
      ("flat pps 16", dict(k_by_group=2, programs_per_sm=16))]

def one(case, cfg, nb, copy):
    before = compiled_kernels()
    run = bu.attn_runner(case, cfg)
    t, mode = bu.gpu_time([run(i) for i in range(case.n_sets)])
    new = sorted({(k.n_regs, k.n_spills) for i, k in compiled_kernels().items() if i not in before})
    err = default_check("decode", case, cfg)
    return t, new, err

if sys.argv[1] == "sweep":
    copy = bu.copy_gbs()
    print(f"copy {copy:.0f} GB/s", flush=True)
    for (b, n), base, variants, layouts in (((64, 4096), B64, V64, ("vllm", "HND")), ((8, 32768), B8, V8, ("vllm",))):
        nb = b * n * 8 * 128 * 2 * 2
        for layout in layouts:
            case = bu.decode_case([n] * b, layout=layout, page_size=16, n_sets=1, gen=gen)
            for name, delta in (variants if layout == "vllm" else variants[:1]):
                cfg = {**base, **delta}
                try:
                    t, regs, err = one(case, cfg, nb, copy)
                    print(f"| {b}x{n} {layout} | {name} | {t*1e3:.1f} us | {nb/t/1e6/copy*100:.1f}% | {regs} | err {err:.1e} |", flush=True)
                except Exception as e:
                    print(f"| {b}x{n} {layout} | {name} | FAILED {type(e).__name__}: {str(e)[:200]} |", flush=True)
            del case; torch.cuda.empty_cache()
elif sys.argv[1] == "ncu":
    layout = sys.argv[2]
    case = bu.decode_case([4096] * 64, layout=layout, page_size=16, n_sets=1, gen=gen)
    run = bu.attn_runner(case, {**B64, "k_by_group": int(sys.argv[3])} if layout == "vllm" else B64)
    for _ in range(3):
        run(0)()
    torch.cuda.synchronize()
