"""Where the mixed-length decode batch's time goes: kernel durations (torch.profiler) per layout."""
import torch
from attn import benchutil as bu
from attn.tune import mixed_lengths
from torch.profiler import profile, ProfilerActivity
gen = torch.Generator("cuda").manual_seed(0)
for layout in ("HND", "vllm"):
    case = bu.decode_case(mixed_lengths(), layout=layout, page_size=16, n_sets=1, gen=gen)
    run = bu.attn_runner(case, None)
    f = run(0)
    for _ in range(5):
        f()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            f()
        torch.cuda.synchronize()
    print(f"== {layout} cfg {run.cfg}")
    for e in prof.key_averages():
        if e.device_type.name == "CUDA" or getattr(e, "self_device_time_total", 0):
            print(f"  {e.key[:60]:60s} calls {e.count:4d} avg {e.device_time_total / max(e.count,1):8.1f} us")
    t, _ = bu.gpu_time([f])
    print(f"  graph-timed total {t*1e3:.1f} us")
    del case
    torch.cuda.empty_cache()
