"""The warp-specialized Hopper prefill (triton_kernels/prefill_hopper.py) beside the portable
kernel (BatchPrefill.run) and SDPA cuDNN / flash, side by side in one run: issue 3's shapes (bf16,
32 q / 8 kv heads, d 128, causal, ragged). Each candidate's output is checked against the portable
kernel's before it is timed. Plan-free timings (work lists built before timing)."""
import numpy as np
import torch
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

import attn
from attn.layouts import KVCache, convert
from attn.scheduling import WorkList
from attn.triton_kernels import prefill_hopper as ph
from attn.triton_kernels.prefill import ordered_items, portable_only

dev, dt, HQ, HK, D = "cuda", torch.bfloat16, 32, 8, 128
F = torch.nn.functional.scaled_dot_product_attention


def bench(f):
    return triton.testing.do_bench(f, warmup=25, rep=200, return_mode="median")


def main():
    print(f"torch {torch.__version__} triton {triton.__version__} {torch.cuda.get_device_name()}", flush=True)
    for b, n in [(8, 2048), (1, 16384), (16, 512)]:
        kr = torch.randn(b * n, HK, D, dtype=dt, device=dev)
        vr = torch.randn_like(kr)
        qi = torch.arange(0, b + 1, device=dev, dtype=torch.int32) * n
        kv = KVCache.ragged(kr, vr, qi.clone())
        q = torch.randn(b * n, HQ, D, dtype=dt, device=dev)
        flops = 4 * b * n * n * HQ * D / 2
        with portable_only():
            plan = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=b, device=dev, num_q_heads=HQ).plan(qi, kv)
        out = torch.empty_like(q)
        t_attn = bench(lambda: plan.run(q, kv, out=out))
        want = out.clone()
        line = f"b={b} n={n}: attn {flops / t_attn / 1e9:.0f} TFLOP/s ({t_attn * 1e3:.0f} us)"
        work = WorkList.build(ordered_items(np.full(b, n), np.full(b, n), 128, True, -1), dev)
        for bn, stages in [(128, 2), (64, 3)]:
            got = torch.empty_like(q)
            name = f"ws {bn}/{stages}"
            run = lambda: ph.launch(q, kv, qi, work, got, None, causal=True, sm_scale=D ** -0.5,  # noqa: E731
                                    block_n=bn, stages=stages)
            try:
                run()
                torch.cuda.synchronize()
                err = ((got.float() - want.float()).norm() / want.float().norm()).item()
                t = bench(run)
                line += f" | {name} {flops / t / 1e9:.0f} (x{t_attn / t:.2f} of attn, err {err:.1e})"
            except Exception as e:  # noqa: BLE001 - a probe: report and go on
                line += f" | {name} {type(e).__name__}: {str(e)[:80]}"
        qd, kd, vd = (x.view(b, n, -1, D).transpose(1, 2) for x in (q, kr, vr))
        for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                with sdpa_kernel(be):
                    ts = bench(lambda: F(qd, kd, vd, is_causal=True, enable_gqa=True))
                line += f" | {name} {flops / ts / 1e9:.0f}"
            except Exception as e:  # noqa: BLE001
                line += f" | {name} {type(e).__name__}"
        print(line, flush=True)
    extend()


def extend():
    """Issue 3's extend shape: 16 x (2048 cached + 512 new) over ragged rows, pages of 16 (TMA) and
    pages of 1 in a shuffled order (gathered)."""
    b, prefix, new = 16, 2048, 512
    n = prefix + new
    kr = torch.randn(b * n, HK, D, dtype=dt, device=dev)
    ragged = KVCache.ragged(kr, torch.randn_like(kr), torch.arange(0, b + 1, device=dev, dtype=torch.int32) * n)
    qi = torch.arange(0, b + 1, device=dev, dtype=torch.int32) * new
    q = torch.randn(b * new, HQ, D, dtype=dt, device=dev)
    flops = 4 * b * new * (prefix + new / 2) * HQ * D
    times = {}
    shuffled = torch.randperm(b * n, generator=torch.Generator().manual_seed(0)).to(dev)
    for name, kv in (("ragged", ragged), ("page16", convert(ragged, "NHD", page_size=16)),
                     ("page1", convert(ragged, "NHD", page_size=1, page_order=shuffled))):
        with portable_only():
            plan = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=b, device=dev, num_q_heads=HQ).plan(qi, kv)
        out = torch.empty_like(q)
        times[f"attn {name}"] = bench(lambda: plan.run(q, kv, out=out))
        want = out.clone()
        if ph.supports(q, kv):
            work = WorkList.build(ordered_items(np.full(b, new), np.full(b, n), 128, True, -1), dev)
            for bn, st in ((128, 2), (64, 3), (64, 4)):
                got = torch.empty_like(q)
                run = lambda: ph.launch(q, kv, qi, work, got, None, causal=True, sm_scale=D ** -0.5,  # noqa: E731
                                        block_n=bn, stages=st)
                run()
                torch.cuda.synchronize()
                err = ((got.float() - want.float()).norm() / want.float().norm()).item()
                times[f"ws {bn}/{st} {name} (err {err:.1e})"] = bench(run)
    print("extend 16 x (2048 + 512): " + " | ".join(f"{k} {flops / t / 1e9:.0f} TFLOP/s ({t * 1e3:.0f} us)"
                                                    for k, t in times.items()), flush=True)


if __name__ == "__main__":
    main()
