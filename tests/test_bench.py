"""The benchmark suite's CPU-checkable parts: FLOP and byte counts, benchmark cases (their caches
hold what they claim), a row measured end to end with an injected timer on the interpreter, and
the report and plot writers."""
import types

import pytest
import torch

from attn import bench, benchutil as bu, configs
from attn.platform import Platform

CPU = Platform("cpu", "cpu", 1, 4, "cpu")


def test_causal_flops_counts_visible_keys():
    # brute force: count (query, key) pairs with key pos <= query pos, bottom-right aligned
    def brute(lq, lk):
        return sum(1 for i in range(lq) for j in range(lk) if j <= lk - lq + i)
    for lq, lk in ((5, 5), (3, 9), (1, 7)):
        assert bu.causal_flops([lq], [lk], 2, 8) == 4 * 8 * 2 * brute(lq, lk)
    assert bu.causal_flops([4], [6], 1, 1, causal=False) == 4 * 24
    # prefill of n: n(n+1)/2 pairs, i.e. about half the dense count
    assert bu.causal_flops([2048], [2048], 32, 128) == pytest.approx(4 * 128 * 32 * 2048 * 2049 / 2)


def test_sets_rotate_past_l2():
    assert bu.sets_for(2 ** 30, 50 * 2 ** 20) == 1
    assert bu.sets_for(10 * 2 ** 20, 50 * 2 ** 20) == 6          # capped
    assert bu.sets_for(60 * 2 ** 20, 50 * 2 ** 20) == 3          # 3 x 60 MB >= 3 x 50 MB


@pytest.mark.parametrize("layout,ps", [("HND", 16), ("NHD", 4), ("vllm", 8), ("pool", 1), ("ragged", 1)])
def test_cases_hold_their_lengths_and_share_the_page_map(layout, ps):
    case = bu.decode_case([5, 17, 1], layout=layout, page_size=ps, q_heads=4, kv_heads=2, head_dim=16,
                          dtype=torch.float32, device="cpu", n_sets=2)
    assert case.n_sets == 2 and case.kv.seq_lens.tolist() == [5, 17, 1]
    assert case.kvs[1].seq_lens.tolist() == [5, 17, 1]
    assert not torch.equal(case.kvs[0].k, case.kvs[1].k)               # distinct storage per set
    assert case.bytes == 2 * 23 * 2 * 16 * 4
    s = case.shape()
    assert s["group"] == 2 and s["page_size"] == (ps if layout not in ("pool", "ragged") else 1) and s["batch"] == 3
    # the cache's contents are what the reference reads
    ref = bu.reference(case)
    assert ref.shape == (3, 4, 16) and torch.isfinite(ref).all()


def test_masked_case_counts_live_flops():
    case = bu.prefill_case([256, 200], causal=True, mask_density=0.5, q_heads=2, kv_heads=1, head_dim=16,
                           dtype=torch.float32, device="cpu")
    assert not case.causal and case.custom_mask.dtype == torch.bool
    assert case.custom_mask.numel() == 256 * 256 + 200 * 200
    assert case.flops == 4 * 16 * 2 * float(case.custom_mask.sum())


def test_measure_row_on_the_interpreter(monkeypatch):
    """A whole row: attn's runner runs (interpreter), the heuristic column appears only when a
    tuned entry differs, ratios and rates follow from the times."""
    timed = []

    def fake_time(calls, **kw):
        out = [c() for c in calls]
        timed.append(out)
        return 2.0, "fake"
    monkeypatch.setattr(bench, "_time", fake_time)
    ctx = types.SimpleNamespace(plat=CPU, args=types.SimpleNamespace(peers=False))
    case = bu.decode_case([9, 40], layout="HND", page_size=4, q_heads=4, kv_heads=2, head_dim=16,
                          dtype=torch.float32, device="cpu")
    row = bench.measure(case, ctx, metric="gbs", peers=[lambda c: {"peer": lambda i: (lambda: None),
                                                                  "broken": "not here"}])
    assert row["attn_ms"] == 2.0 and "heur_ms" not in row and row["peers"] == {"peer": 2.0}
    assert any("broken: not here" in n for n in row["notes"])
    out = timed[0][0]
    assert bu.rel_err(out, bu.reference(case)) < 1e-4
    cells = bench.fmt_row(row, {"copy_gbs": case.bytes / 2.0 / 1e6 * 2, "matmul_tflops": 1.0})
    assert cells[2] == f"{case.bytes / 2.0 / 1e6:.0f} GB/s" and cells[3] == "50%"
    assert "peer" in cells[5] and "(1.00x)" in cells[5]


def test_rotary_write_rows_on_the_interpreter(monkeypatch):
    """The fused-write rows: one per layout, attn's launch rotating q as the torch reference does
    while it writes the cache, the bytes of q, k and v read and written plus the slot mapping."""
    from attn.tune import RotaryCase
    timed = []

    def fake_time(calls, **kw):
        timed.append([c() for c in calls])
        return 2.0, "fake"
    monkeypatch.setattr(bench, "_time", fake_time)
    gen = torch.Generator().manual_seed(0)
    ctx = types.SimpleNamespace(plat=CPU, gen=gen)
    rc = RotaryCase(20, dtype=torch.float32, device="cpu", gen=gen)
    rows = list(bench._rotary_write_rows(ctx, rc))
    assert [r["shape"] for r in rows] == [f"20 tokens, write {lay} ps=16" for lay in ("NHD", "HND", "vllm")]
    assert all(r["work"] == 2.0 * 20 * (32 + 16) * 128 * 4 + 8 * 20 for r in rows)
    assert all(r["attn_ms"] == 2.0 and r["peers"] == {"torch-ref": 2.0} for r in rows)
    for attn_q, ref_q in zip(timed[0::2], timed[1::2]):        # (attn launch, torch reference) per row
        assert bu.rel_err(attn_q[0], ref_q[0]) < 1e-5


def test_rotary_apply_row_times_the_heuristic_when_tuned(monkeypatch):
    """The rotary apply row launches with the tuned entry and times the launcher's defaults
    beside it (the "heuristic us" column); without an entry it says so."""
    monkeypatch.setattr(bench, "_rotary_write_rows", lambda ctx, rc: iter(()))
    from attn import tune
    times = iter([2.0, 3.0, 1.0] * 2 + [2.0, 1.0] * 2)  # (attn, heuristic, torch-ref) a row; then untuned
    monkeypatch.setattr(bench, "_time", lambda calls, **kw: ([c() for c in calls], (next(times), "fake"))[1])
    ctx = types.SimpleNamespace(plat=CPU, gen=torch.Generator().manual_seed(0), sets=lambda nbytes: 1)
    real = tune.RotaryCase                                # the interpreter: few tokens, float32
    monkeypatch.setattr(tune, "RotaryCase", lambda tokens, n_sets, gen: real(8, torch.float32, "cpu", n_sets, gen))
    with configs.override("rotary", dict(tile=1024, num_warps=2)):
        rows = list(bench.suite_rotary(ctx))
    ceil = {"copy_gbs": 1.0, "matmul_tflops": 1.0}
    assert all(r["tuned"] for r in rows) and all("heur_ms" in r for r in rows)
    assert "(1.50x)" in bench.fmt_row(rows[0], ceil)[4]
    rows = list(bench.suite_rotary(ctx))
    assert not any(r["tuned"] or "heur_ms" in r for r in rows)
    assert bench.fmt_row(rows[0], ceil)[4] == "(no tuned entry)"


def test_measure_times_heuristic_when_tuned_differs(monkeypatch, tmp_path):
    import json
    monkeypatch.setattr(bench, "_time", lambda calls, **kw: ([c() for c in calls], (3.0, "fake"))[1])
    case = bu.decode_case([9, 40], layout="HND", page_size=4, q_heads=4, kv_heads=2, head_dim=16,
                          dtype=torch.float32, device="cpu")
    path = configs.file_for(CPU, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ops": {"decode": [dict(bucket=dict(dtype="float32", head_dim=16),
                                                        config=dict(BLOCK_N=32))]}}))
    configs.use_dir(tmp_path)
    try:
        row = bench.measure(case, types.SimpleNamespace(plat=CPU, args=None), metric="gbs")
    finally:
        configs.use_dir(None)
    assert row["tuned"] and row["heur_ms"] == 3.0
    assert "(1.00x)" in bench.fmt_row(row, {"copy_gbs": 1.0, "matmul_tflops": 1.0})[4]


def test_report_and_plot(tmp_path):
    rows = {"decode": [dict(shape="b=2 x 9", op="decode", attn_ms=0.5, heur_ms=0.6, tuned=True, peers={"sdpa": 1.0},
                            notes=["x"], metric="gbs", work=1e6, path="plan/run, graph")],
            "prefill": [dict(shape="b=1 x 8", op="prefill", attn_ms=1.0, tuned=False, peers={}, notes=[],
                             metric="tflops", work=1e9, path="plan/run, graph")]}
    ceil = {"copy_gbs": 4.0, "matmul_tflops": 2.0}
    plat = Platform("nvidia", "sm_90", 32, 132, "NVIDIA H100 80GB HBM3")
    md = tmp_path / "r.md"
    bench.write_report(md, rows, ceil, plat, 12.0)
    text = md.read_text()
    assert "NVIDIA H100 80GB HBM3" in text and "copy 4 GB/s" in text and "## decode" in text
    assert "| b=2 x 9 | 500.0 | 2 GB/s | 50% | 600.0 (1.20x) | sdpa 1 (2.00x) |" in text
    assert "| b=1 x 8 | 1000.0 | 1 TFLOP/s | 50% | (no tuned entry) | - |" in text
    pytest.importorskip("matplotlib")
    assert bench.plot(tmp_path / "d.png", "decode", rows["decode"])
    assert (tmp_path / "d.png").stat().st_size > 1000


@pytest.mark.parametrize("layout,ps", [("NHD", 4), ("pool", 1)])
def test_prefill_runner_plans_once_and_matches_reference(layout, ps):
    """The runner the suite and the tuner time: extend over a paged prefix, every input set."""
    case = bu.prefill_case([40, 1, 70], [20, 1, 70], layout=layout, page_size=ps, q_heads=4, kv_heads=2,
                           head_dim=16, dtype=torch.float32, device="cpu", n_sets=2)
    run = bu.attn_runner(case, {"BLOCK_N": 32})
    for i in range(case.n_sets):
        assert bu.rel_err(run(i)().float(), bu.reference(case, i).float()) < 1e-4, (layout, ps, i)


def test_source_commit_marks_a_changed_tree(tmp_path):
    """A report's commit says "+dirty" when the measured tree is not the commit (a copied tree
    with older git metadata printed the old commit as if it had run)."""
    import subprocess
    assert bench.source_commit(tmp_path) == "unknown"
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "k.py").write_text("a = 1\n")
    subprocess.run(git + ["add", "k.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "k"], check=True)
    sha = subprocess.run(git + ["rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert bench.source_commit(tmp_path) == sha
    (tmp_path / "new.py").write_text("untracked files do not count\n")
    assert bench.source_commit(tmp_path) == sha
    (tmp_path / "k.py").write_text("a = 2\n")
    assert bench.source_commit(tmp_path) == sha + "+dirty"
