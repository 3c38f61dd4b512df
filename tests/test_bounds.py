"""Every kernel read in bounds, checked by compute-sanitizer's memcheck (NVIDIA's GPU tier).

A read out of bounds that lands in mapped memory changes no output when its value is masked
away or its row attends to nothing; most runs pass, and one in a crowded process faults. Here
the reads themselves are checked: the cases put empty and one-token sequences at the edges of
each path (an empty sequence's decode row sits at position -1).
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

BACKEND = "triton"

CASES = r"""
import sys, torch, attn
sys.path.insert(0, sys.argv[1])
from kvgen import make_kv, randn
gen, dev, bf = torch.Generator().manual_seed(0), sys.argv[2], torch.bfloat16
small = dev == "cpu"                                   # the script's own check, through the interpreter
lens = [0, 1, 9, 30, 0, 40] if small else [0, 1, 37, 300, 0, 4097]
q_lens = [0, 1, 5, 30, 0, 7] if small else [0, 1, 20, 300, 0, 77]
layouts = (("ragged", 1, 256), ("ragged", 1, 128), ("HND", 16, 128), ("NHD", 3, 64), ("vllm", 16, 128),
           ("token_pool", 1, 64))
for layout, ps, d in layouts[2:4] if small else layouts:
    case = make_kv(lens, layout=layout, page_size=ps, kv_heads=2, head_dim=d, dtype=bf, device=dev, gen=gen)
    kv = case.kv
    q = randn((len(lens), 8, d), bf, dev, gen)
    cs = attn.rotary.cos_sin_cache(max(lens), d, device=dev)
    rot = attn.Rotary(cs, "neox", rotate_k=layout == "ragged")
    for splits in (None, 4):
        attn.decode(q, kv, rotary=rot, num_splits=splits, backend="triton")
    attn.decode(q, kv, window_left=50, backend="triton")
    for splits in (3, 40):                             # BatchDecode: split-KV and its merge launch
        dec = attn.BatchDecode(max_batch=len(lens), max_splits=splits, device=dev, kernel_config=dict(min_chunk_blocks=1))
        dec.plan(kv, 8, return_lse=True, num_splits=splits).run(q, kv)
    for planning in (dict(guided=0.25), dict(occupancy=6, programs_per_sm=5)):   # guided chunks; a ceiling
        dec = attn.BatchDecode(max_batch=len(lens), device=dev, kernel_config=dict(min_chunk_blocks=1, **planning))
        dec.plan(kv, 8, return_lse=True).run(q, kv)
    qi = torch.tensor([0] + q_lens).cumsum(0).to(dev, torch.int32)
    qp = randn((int(qi[-1]), 8, d), bf, dev, gen)
    attn.prefill(qp, kv, qi, causal=True, rotary=rot, backend="triton")
    for causal in (True, False):                       # on sm_90, the Hopper kernel where it fits (TMA, gathered)
        attn.prefill(qp, kv, qi, causal=causal, return_lse=causal, backend="triton")
    ba = attn.BatchAttention(max_tokens=int(qi[-1]), max_batch=len(lens), device=dev)
    ba.plan(qi, kv, 8, return_lse=True)
    ba.run(qp, kv)
    if layout in ("HND", "NHD", "vllm"):
        # New tokens written to the last slots of the pool, with vLLM's -1 padding among them.
        n = 10 if small else 40
        slots = torch.arange(kv.k.shape[0] * ps - n, kv.k.shape[0] * ps, device=dev)
        slots[::7] = -1
        k_new, v_new = randn((n, 2, d), bf, dev, gen), randn((n, 2, d), bf, dev, gen)
        attn.layouts.write_kv(kv, k_new, v_new, slots, backend="triton")
        pos = torch.randint(0, max(lens), (n,), device=dev)
        attn.rotary.apply_and_write_kv(randn((n, 8, d), bf, dev, gen), k_new, v_new, pos, cs, kv, slots,
                                       backend="triton")
        attn.rotary.apply(randn((n, 8, d), bf, dev, gen), k_new, pos, cs, backend="triton")
o, l = randn((3, 5, 8, 128), torch.float32, dev, gen), randn((3, 5, 8), torch.float32, dev, gen)
l[1, 2] = float("-inf")
attn.merge_states(o, l)
if dev == "cuda":
    torch.cuda.synchronize()
print("cases done")
"""


def _sanitizer():
    found = shutil.which("compute-sanitizer")
    if found is None and os.path.exists("/usr/local/cuda/bin/compute-sanitizer"):
        found = "/usr/local/cuda/bin/compute-sanitizer"
    return found


@pytest.mark.gpu
def test_kernels_read_in_bounds_under_memcheck(tmp_path):
    if torch.version.hip is not None:
        pytest.skip("compute-sanitizer is NVIDIA's; ROCm has no equivalent in this tier")
    tool = _sanitizer()
    assert tool is not None, "the NVIDIA GPU tier needs compute-sanitizer (CUDA toolkit) on PATH"
    script = tmp_path / "cases.py"
    script.write_text(CASES)
    # memcheck knows allocations, not tensors: PyTorch's cached segments hold many tensors, so a read
    # just before one tensor lands in its neighbour and passes. One cudaMalloc a tensor, each
    # followed by a padding buffer memcheck owns, makes every such read an error.
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    run = subprocess.run([tool, "--tool", "memcheck", "--padding", "65536", "--print-limit", "5", sys.executable,
                          str(script), os.path.dirname(__file__), "cuda"], capture_output=True, text=True, timeout=900,
                         env=env)
    report = run.stdout + run.stderr
    assert "cases done" in report, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]


def test_memcheck_cases_run_through_the_interpreter(tmp_path):
    """The GPU test's script itself (small shapes, two layouts): it must not fail for its own reasons."""
    script = tmp_path / "cases.py"
    script.write_text(CASES)
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(script), os.path.dirname(__file__), "cpu"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert run.returncode == 0 and "cases done" in run.stdout, (run.stdout + run.stderr)[-4000:]
