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
gen, dev, bf = torch.Generator().manual_seed(0), "cuda", torch.bfloat16
lens = [0, 1, 37, 300, 0, 4097]
for layout, ps, d in (("ragged", 1, 256), ("ragged", 1, 128), ("HND", 16, 128), ("vllm", 16, 128),
                      ("token_pool", 1, 64)):
    case = make_kv(lens, layout=layout, page_size=ps, kv_heads=2, head_dim=d, dtype=bf, device=dev, gen=gen)
    q = randn((len(lens), 8, d), bf, dev, gen)
    rot = attn.Rotary(attn.rotary.cos_sin_cache(4097, d, device=dev), "neox", rotate_k=layout == "ragged")
    for splits in (None, 4):
        attn.decode(q, case.kv, rotary=rot, num_splits=splits, backend="triton")
    attn.decode(q, case.kv, window_left=50, backend="triton")
    q_lens = [0, 1, 20, 300, 0, 77]
    qi = torch.tensor([0] + q_lens).cumsum(0).to(dev, torch.int32)
    qp = randn((int(qi[-1]), 8, d), bf, dev, gen)
    attn.prefill(qp, case.kv, qi, causal=True, rotary=rot, backend="triton")
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
                          str(script), os.path.dirname(__file__)], capture_output=True, text=True, timeout=900,
                         env=env)
    report = run.stdout + run.stderr
    assert "cases done" in report, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
