"""Prepared for the next device call (issue 5: rotary on load in prefill costs +9.8%, target 3%):
is there a prefill tile whose rotary run is within 3% of the tuned tile's plain run? Each
candidate tile is planned twice, without and with attn.Rotary (q rotated on load), on the same
inputs (b=8 x 2048 causal, bf16, 32 / 8 heads, d128, ragged cache), graph-timed alternately in
rounds. The tuned config (what attn.configs looks up) is the first row.

    python benchmarks/results/h200-2026-12-03f/rot_tiles.py                # on the GPU (~1-2 min)
    SMALL=1 TRITON_INTERPRET=1 python benchmarks/results/h200-2026-12-03f/rot_tiles.py  # the script's own check

Columns: plain us, rotary us, rotary / plain (the tile's own overhead), rotary / tuned plain
(issue 5's measure, if this tile were chosen for the rotary feature)."""
import os
import statistics

import torch

import attn
from attn import benchutil as bu
from attn.configs import override

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
gen = torch.Generator(dev).manual_seed(0)
lens = [64, 32] if SMALL else [2048] * 8
heads, kv_heads, d = (4, 2, 64) if SMALL else (32, 8, 128)
case = bu.prefill_case(lens, layout="ragged", q_heads=heads, kv_heads=kv_heads, head_dim=d, device=dev, n_sets=1
                       if SMALL else 2, gen=gen, dtype=torch.float32 if SMALL else torch.bfloat16)
rot = attn.Rotary(attn.rotary.cos_sin_cache(max(lens), d, device=dev), "neox")
TILES = [None] + [dict(BLOCK_M=m, BLOCK_N=n, num_warps=w, num_stages=s)
                  for m, n, w, s in ([(16, 16, 4, 1)] if SMALL else
                                     [(128, 64, 8, 3), (128, 64, 8, 2), (128, 32, 8, 3), (128, 32, 4, 3),
                                      (128, 128, 8, 2), (64, 64, 4, 3), (64, 32, 4, 4), (128, 64, 4, 3)])]


def runner(cfg, rotary):
    """plan once (cfg forced when given); return (calls per input set, outputs, the plan's cfg)."""
    plan = attn.BatchPrefill(max_tokens=case.q.shape[0], max_batch=len(lens), num_q_heads=heads, device=dev)
    if cfg is None:
        plan.plan(case.q_indptr, case.kv, causal=True, rotary=rotary)
    else:
        with override("prefill", cfg):
            plan.plan(case.q_indptr, case.kv, causal=True, rotary=rotary)
    outs = [torch.empty_like(q) for q in case.qs]
    calls = [(lambda i=i: plan.run(case.qs[i], case.kvs[i], out=outs[i])) for i in range(len(case.qs))]
    return calls, outs, dict(plan.cfg)


def time_us(calls):
    if SMALL:
        calls[0]()
        return 1.0
    return bu.gpu_time(calls)[0] * 1e6


rows, base = [], None
for cfg in TILES:
    try:
        plain, rotated = runner(cfg, None), runner(cfg, rot)
        t_plain, t_rot = [], []
        for _ in range(1 if SMALL else 3):
            t_plain.append(time_us(plain[0]))
            t_rot.append(time_us(rotated[0]))
    except Exception as e:          # a forced tile may not fit this GPU (shared memory, registers)
        rows.append(f"| {cfg} | failed: {type(e).__name__}: {str(e)[:80]} | | | |")
        continue
    p_us, r_us = statistics.median(t_plain), statistics.median(t_rot)
    base = p_us if base is None else base
    want = attn.prefill(case.qs[0], case.kvs[0], case.q_indptr, causal=True, rotary=rot, backend="triton") \
        if SMALL else None
    got = rotated[1][0]
    err = float((got.float() - want.float()).abs().max()) if want is not None else float("nan")
    name = "tuned " + "/".join(str(plain[2].get(k)) for k in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")) \
        if cfg is None else "/".join(str(cfg[k]) for k in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages"))
    rows.append(f"| {name} | {p_us:.1f} | {r_us:.1f} | {r_us / p_us:.3f} | {r_us / base:.3f} |"
                + (f" {err:.1e} |" if SMALL else ""))
print("| tile (M/N/warps/stages) | plain us | rotary us | rotary / plain | rotary / tuned plain |")
print("|---|---:|---:|---:|---:|")
print("\n".join(rows))
