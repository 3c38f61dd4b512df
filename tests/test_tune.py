"""The tuner's loop on the Triton interpreter: tiny fp32 shapes, a tiny candidate space, and an
injected timer so the winner is known in advance (the real timer needs a GPU)."""
import json
import sys
from pathlib import Path

import pytest
import torch

from attn import configs, tune
from attn.platform import Platform

CPU = Platform("cpu", "cpu", 1, 4, "cpu")
SPACE = ([dict(BLOCK_N=16), dict(BLOCK_N=32)], [dict(programs_per_sm=1)])
SHAPES = [dict(batch=2, kv_len=40), dict(lengths=[3, 70, 1])]


def fake_timer(log):
    """Deterministic 'time': BLOCK_N=32 wins, one split beats the heuristic's splits. Runs each
    call once, so a config that cannot launch still fails here."""
    def timer(calls, cfg):
        for c in calls:
            c()
        log.append(dict(cfg))
        return 1.0 - 0.1 * (cfg.get("BLOCK_N") == 32) - 0.05 * (cfg.get("programs_per_sm") == 1)
    return timer


def make(tmp_path, log, **kw):
    kw.setdefault("space", SPACE)
    kw.setdefault("timer", fake_timer(log))
    return tune.Tuner("decode", kw.pop("shapes", SHAPES), out=tmp_path / "cpu.json", plat=CPU, device="cpu", dtype=torch.float32,
                      q_heads=4, kv_heads=2, head_dim=16, progress=False, hip=False,
                      log=lambda *a: None, **kw)


def test_tuner_picks_fastest_checked_and_writes_file(tmp_path):
    log = []
    res = make(tmp_path, log).run()
    assert not res["skipped"]
    assert len(res["entries"]) == 2
    for e in res["entries"]:
        assert e["config"]["BLOCK_N"] == 32, e
        assert e["config"]["programs_per_sm"] == 1, e     # the stage-2 modifier on the best tile
        assert e["rel_err"] <= 1e-4                           # checked against the fp32 reference
        assert e["heuristic_time_us"] == pytest.approx(1000.0) and e["time_us"] == pytest.approx(850.0)
        assert e["speedup"] == pytest.approx(1000 / 850, rel=1e-3)
        assert set(e["bucket"]) >= {"head_dim", "group", "page_size", "dtype", "batch", "kv_len"}
    # heuristic + 2 tiles + 1 modifier per shape; the heuristic's BLOCK_N=16 tile is timed once
    assert len(log) == 2 * 3
    data = tune.write_results(tmp_path / "cpu.json", "decode", res["entries"], CPU)
    assert data["meta"]["generated_by"] == "python -m attn tune"
    # A second op's results merge into the same file; the first op's stay.
    tune.write_results(tmp_path / "cpu.json", "prefill", [dict(bucket=dict(dtype="float32", head_dim=16),
                                                               config=dict(BLOCK_M=32))], CPU)
    on_disk = json.loads((tmp_path / "cpu.json").read_text())
    assert len(on_disk["ops"]["decode"]) == 2 and len(on_disk["ops"]["prefill"]) == 1


def test_tuned_file_is_what_lookup_returns(tmp_path):
    res = make(tmp_path, []).run()
    tune.write_results(tmp_path / "cpu" / "cpu.json", "decode", res["entries"], CPU)
    configs.use_dir(tmp_path)
    try:
        cfg = configs.lookup("decode", CPU, head_dim=16, group=2, page_size=16, dtype="float32", batch=2, kv_len=40)
        assert cfg["BLOCK_N"] == 32 and cfg["programs_per_sm"] == 1
        # Another head_dim has no entry: the heuristic.
        assert configs.lookup("decode", CPU, head_dim=64, dtype="float32") == configs.heuristic("decode", CPU,
                                                                                                head_dim=64)
    finally:
        configs.use_dir(None)


def test_write_results_replaces_a_bucket_written_before_the_layout_key(tmp_path):
    """The tuner's buckets name their layout family; a file's older entry of the same shape
    without the key (a rows layout) is replaced, not kept beside it, and a vLLM entry of the
    same sizes is another bucket."""
    path = tmp_path / "cpu" / "cpu.json"
    res = make(tmp_path, [], shapes=[dict(batch=2, kv_len=32)]).run()
    assert [e["bucket"]["layout"] for e in res["entries"]] == ["rows"]
    shape = {k: v for k, v in res["entries"][0]["bucket"].items() if k != "layout"}
    old = dict(bucket=shape, config=dict(BLOCK_N=16), time_us=2.0, heuristic_time_us=2.0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ops": {"decode": [old]}}))
    tune.write_results(path, "decode", res["entries"], CPU)
    vllm = dict(bucket={**shape, "layout": "vllm"}, config=dict(BLOCK_N=64), time_us=1.0, heuristic_time_us=1.0)
    tune.write_results(path, "decode", [vllm], CPU)
    entries = json.loads(path.read_text())["ops"]["decode"]
    assert [(e["bucket"].get("layout"), e["config"]["BLOCK_N"]) for e in entries] == [("rows", 32), ("vllm", 64)]


def test_vllm_decode_buckets_measure_every_k_tile(tmp_path):
    """A vLLM decode bucket times the three K / V tiles (rows, K by dim group, whole page-heads;
    the heuristic takes the last): the tuner, not the heuristic, decides; all run correctly here
    (the interpreter) and the winner carries its choice into the file."""
    log = []

    def timer(calls, cfg):
        for c in calls:
            c()
        log.append(dict(cfg))
        return 0.5 if cfg.get("k_by_group") == 1 else 1.0
    res = make(tmp_path, log, shapes=[dict(batch=2, kv_len=40, layout="vllm")], timer=timer).run()
    assert sorted({int(c.get("k_by_group", 0)) for c in log}) == [0, 1, 2], log
    (e,) = res["entries"]
    assert e["bucket"]["layout"] == "vllm" and e["config"]["k_by_group"] == 1, e
    # rows layouts do not time the flag: it changes nothing there
    log.clear()
    make(tmp_path / "rows", log, shapes=[dict(batch=2, kv_len=40)], timer=timer).run()
    assert not any("k_by_group" in c for c in log), log


def test_resume_after_interruption(tmp_path):
    log = []
    t = make(tmp_path, log)
    t.shapes = SHAPES[:1]                 # "interrupted" after the first shape
    t.run()
    assert (tmp_path / "cpu.json.partial.json").exists()
    log2 = []
    res = make(tmp_path, log2).run()
    assert len(res["entries"]) == 2
    assert len(log2) == 3                 # only the second shape was measured


def test_budget_stops_early(tmp_path):
    log = []
    res = make(tmp_path, log, budget_s=0.0).run()
    assert res["entries"] == [] and len(res["skipped"]) == 2 and log == []


def test_failed_check_falls_back_to_next(tmp_path):
    def check(op, case, cfg, probe):
        return 1.0 if cfg.get("programs_per_sm") == 1 else tune.default_check(op, case, cfg, probe)
    res = make(tmp_path, [], check=check).run()
    for e in res["entries"]:
        assert e["config"]["BLOCK_N"] == 32 and e["config"].get("programs_per_sm") != 1, e


def test_parse_shapes():
    assert tune.parse_shapes("decode", "64x4096,8x32768") == [dict(batch=64, kv_len=4096), dict(batch=8, kv_len=32768)]
    ext = tune.parse_shapes("extend", "16x2048+512")[0]
    assert ext["kv_len"] == 2560 and ext["q_len"] == 512
    assert tune.parse_shapes("rotary", "256") == [dict(tokens=256)]
    assert tune.parse_shapes("decode", "64x4096:vllm,8x1024:pool") == [
        dict(batch=64, kv_len=4096, layout="vllm", page_size=16), dict(batch=8, kv_len=1024, layout="pool", page_size=1)]
    mixed = tune.parse_shapes("decode", "mixed:vllm,mixed")
    assert [m["layout"] for m in mixed] == ["vllm", "HND"] and mixed[0]["lengths"] == tune.mixed_lengths()
    with pytest.raises(SystemExit, match="layout 'XYZ'"):
        tune.parse_shapes("decode", "64x4096:XYZ")
    assert len(tune.parse_shapes("prefill", None)) == 3
    with pytest.raises(SystemExit, match="BxLEN"):
        tune.parse_shapes("decode", "64-4096")


def test_candidate_space_vendor_knobs():
    amd = Platform("amd", "gfx942", 64, 304, "AMD Instinct MI300X")
    nv = Platform("nvidia", "sm_90", 32, 132, "NVIDIA H100 80GB HBM3")
    s1, s2 = tune.candidate_space("prefill", amd)
    assert all(c["num_warps"] <= 4 and c["num_stages"] <= 2 for c in s1)
    assert any("waves_per_eu" in m for m in s2) and any("matrix_instr_nonkdim" in m for m in s2)
    s1, s2 = tune.candidate_space("decode", nv)
    assert not any("waves_per_eu" in m for m in s2)
    assert any("programs_per_sm" in m for m in s2) and any(c["BLOCK_N"] == 128 for c in s1)


@pytest.mark.parametrize("op", ["prefill", "decode"])
def test_hopper_candidates_compile_without_spills(op):
    """Every tile the tuner may pick on Hopper compiles for sm_90 without spilling (the compile
    matrix's rule): a device with an older Triton can time a tile clean that spills here.
    (A subprocess: the tests run Triton in interpreter mode, which cannot compile.)"""
    import os
    import subprocess
    repo = Path(__file__).resolve().parents[1]
    script = (
        "import json, sys, triton\n"
        "sys.path.insert(0, 'ci')\n"
        "import compile_matrix\n"
        "from attn import tune\n"
        "from attn.platform import Platform\n"
        "from attn.triton_kernels.attention import compile_spec\n"
        "from attn.triton_kernels.specs import gpu_target\n"
        "nv = Platform('nvidia', 'sm_90', 32, 132, 'NVIDIA H200')\n"
        "out = []\n"
        f"op = {op!r}\n"
        "extra, ps, cm = (dict(CAUSAL=True), 1, '') if op == 'prefill' else (dict(HAS_PARTIALS=True), 16, '.cg')\n"
        "for c in tune.candidate_space(op, nv)[0]:\n"
        "    spec = compile_spec(op, 'candidate', ('sm_90',), 'bf16', dict(c, cache_modifier=cm), group=4,\n"
        "                        head_dim=128, page_size=ps, layout='NHD|HND', **extra)\n"
        "    k = triton.compile(spec.source(), target=gpu_target('sm_90'), options=spec.options_for('sm_90'))\n"
        "    out.append([c, compile_matrix.nvidia_metrics(k, 90)['spill']])\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    p = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(rows) >= 4
    assert [c for c, spill in rows if spill] == [], rows


def test_tuner_rotary_op_runs_and_checks(tmp_path):
    # The rotary op's runner builds the kernel's own launch config and overrides it per candidate;
    # each candidate runs once through the interpreter and the winner is checked against the
    # float32 reference.
    log = []
    space = ([dict(BLOCK_TQ=1), dict(BLOCK_TQ=2)], [dict(num_warps=1)])
    t = tune.Tuner("rotary", [dict(tokens=3)], out=tmp_path / "cpu.json", plat=CPU, device="cpu",
                   dtype=torch.float32, timer=fake_timer(log), progress=False, hip=False, log=lambda *a: None,
                   space=space)
    res = t.run()
    (entry,) = res["entries"]
    assert entry["rel_err"] <= 1e-5 and entry["bucket"]["head_dim"] == 128
    assert {c.get("BLOCK_TQ") for c in log} >= {1, 2}          # both tiles timed (beside the heuristic)


def test_rotary_space_candidates_each_change_the_launch():
    """No two candidates of the rotary space are the same launch (the space once named a key the
    launcher never read: every candidate timed the default); rotary_runner passes the tunable
    knobs through launch_config."""
    from attn.triton_kernels import rotary as tr
    nv = Platform("nvidia", "sm_90", 32, 132, "NVIDIA H200")
    stage1, stage2 = tune.candidate_space("rotary", nv)
    assert all(set(c) <= set(tr.TUNABLE) for c in stage1 + stage2)
    best = stage1[0]

    def launch(c):
        return tuple(sorted(tr.launch_config(8192, 32, 8, 128, "nvidia", 132, overrides=tuple(sorted(c.items())))
                            .items()))
    shapes = [launch(c) for c in stage1] + [launch({**best, **m}) for m in stage2]
    assert len(set(shapes)) == len(shapes), shapes
    case = tune.RotaryCase(64, torch.float32, "cpu")
    run = tune.rotary_runner(case, dict(tile=1024, num_warps=2))
    assert run.cfg == tr.launch_config(64, 32, 8, 128, "cpu", 4, overrides=(("num_warps", 2), ("tile", 1024)))


def test_op_all_gives_each_op_a_share_of_the_budget(tmp_path, monkeypatch):
    """--op all: decode (tuned first) cannot spend the whole budget; what an op leaves unused
    passes on to the ones after it."""
    import argparse
    budgets = []

    class FakeTuner:
        def __init__(self, op, shapes, *, budget_s, **kw):
            budgets.append((op, budget_s))
            self.partial_path = tmp_path / "none.partial.json"

        def run(self):
            return {"entries": [], "skipped": []}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(tune.platform, "get", lambda: CPU)
    monkeypatch.setattr(tune, "Tuner", FakeTuner)
    monkeypatch.setattr(tune, "write_results", lambda *a, **k: None)
    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    assert tune.run(parser.parse_args(["--op", "all", "--budget-s", "400", "--out", str(tmp_path / "x.json"),
                                       "--no-progress"])) == 0
    assert [op for op, _ in budgets] == ["decode", "prefill", "extend", "rotary"]
    shares = [b for _, b in budgets]
    assert shares[0] == pytest.approx(100, abs=1), shares
    assert shares == sorted(shares) and shares[-1] == pytest.approx(400, abs=1), shares


def test_a_config_that_spills_is_never_picked(tmp_path, monkeypatch):
    """The compile matrix fails a spilling config: the tuner skips one however fast it times
    (spills_since stands in for the compiled kernels' spill counts, which the interpreter lacks)."""
    current = {}
    real_make_runner = tune.make_runner

    def make_runner(op, case, cfg):
        current.clear()
        current.update(cfg)               # the config whose first call spills_since() is asked about
        return real_make_runner(op, case, cfg)

    monkeypatch.setattr(tune, "make_runner", make_runner)
    monkeypatch.setattr(tune, "spills_since", lambda before: 80 if current.get("BLOCK_N") == 32 else 0)
    res = make(tmp_path, []).run()
    assert res["entries"], res
    for e in res["entries"]:
        assert e["config"].get("BLOCK_N") != 32, e       # the fastest by the timer, but it spills


def test_a_spilling_heuristic_is_still_the_baseline(tmp_path, monkeypatch):
    """The heuristic runs wherever the file has no entry, spilling or not: it is timed as the
    baseline (on the H200, Triton 3.6 spilled 2 bytes in vLLM's decode heuristic; rejecting it
    recorded a 1e30 us baseline and wrote a config slower than the heuristic). A candidate that
    spills is still rejected."""
    current = {}
    real_make_runner = tune.make_runner

    def make_runner(op, case, cfg):
        current.clear()
        current.update(cfg)
        return real_make_runner(op, case, cfg)

    def timer(calls, cfg):               # the heuristic (BLOCK_N 16 on the CPU) is the fastest
        for c in calls:
            c()
        return 0.5 if cfg.get("BLOCK_N") == 16 and cfg.get("programs_per_sm") != 1 else 1.0

    monkeypatch.setattr(tune, "make_runner", make_runner)
    monkeypatch.setattr(tune, "spills_since", lambda before: 2 if current.get("BLOCK_N") == 16 else 0)
    res = make(tmp_path, [], timer=timer, space=([dict(BLOCK_N=32)], [dict(programs_per_sm=1)])).run()
    assert res["entries"]
    for e in res["entries"]:
        assert e["heuristic_time_us"] == 500.0 and e["speedup"] == 1.0, e
        assert e["config"]["BLOCK_N"] == 16 and e["config"]["programs_per_sm"] != 1, e


def test_compiled_kernels_reads_triton_caches():
    """compiled_kernels() walks the kernel modules' JIT caches without error (empty or not)."""
    ks = tune.compiled_kernels()
    assert isinstance(ks, dict) and tune.spills_since(ks) == 0
