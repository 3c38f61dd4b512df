"""The workflow files (ci/workflows/, copied to .github/workflows/) and the GPU-tier runner, in the
CPU tier: the YAML parses, validates against GitHub's workflow schema (the copy vendored in
check-jsonschema, offline), runs what README and ci/ say, and gpu_tier.py writes its report."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "ci" / "workflows").glob("*.yml"))
NAMES = [p.name for p in SOURCES]


def load(name: str) -> dict:
    doc = yaml.safe_load((REPO / "ci" / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def run_commands(doc: dict) -> list[str]:
    return [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]


def readme_test_command() -> str:
    for line in (REPO / "README.md").read_text().splitlines():
        if "python -m pytest" in line and line.lstrip().startswith("pip install"):
            return line.split("#")[0].strip()
    raise AssertionError("README.md has no `pip install ... && python -m pytest` line")


def test_expected_workflows_exist():
    assert {"cpu.yml", "gpu-nvidia.yml", "gpu-amd.yml"} <= set(NAMES), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_github_copy_is_identical(name):
    copy = REPO / ".github" / "workflows" / name
    assert copy.exists(), f".github/workflows/{name} missing: cp ci/workflows/{name} .github/workflows/"
    assert copy.read_bytes() == (REPO / "ci" / "workflows" / name).read_bytes(), (
        f".github/workflows/{name} differs from ci/workflows/{name} (the source): copy it over")


@pytest.mark.parametrize("name", NAMES)
def test_structure(name):
    doc = load(name)
    assert doc.get("name") and doc.get("on") and doc.get("jobs"), f"{name}: needs name, on, jobs"
    assert doc.get("permissions") == {"contents": "read"}, f"{name}: least-privilege token"
    for jid, job in doc["jobs"].items():
        where = f"{name}: job {jid}"
        assert job.get("runs-on"), f"{where}: no runs-on"
        assert isinstance(job.get("timeout-minutes"), int), f"{where}: set timeout-minutes"
        steps = job.get("steps") or []
        assert steps and any(str(s.get("uses", "")).startswith("actions/checkout@") for s in steps), where
        for s in steps:
            assert ("uses" in s) != ("run" in s), f"{where}: a step needs exactly one of uses/run: {s}"
            if "uses" in s:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", s["uses"]), f"{where}: pin actions to a major: {s}"
    for cmd in run_commands(doc):
        for script in re.findall(r"\b(ci/[\w./-]+\.(?:py|sh))", cmd):
            assert (REPO / script).exists(), f"{name} runs {script}, which does not exist"


def test_cpu_workflow_runs_readme_command_and_compile_matrix():
    doc = load("cpu.yml")
    cmds = run_commands(doc)
    want = readme_test_command()
    assert any(want in c for c in cmds), f"cpu.yml must run README's test command {want!r}; runs {cmds}"
    assert any("ci/compile_matrix.py" in c for c in cmds), cmds
    assert "pull_request" in doc["on"] and "schedule" in doc["on"], doc["on"]
    assert all("self-hosted" not in str(j["runs-on"]) for j in doc["jobs"].values())


@pytest.mark.parametrize("name,label", [("gpu-nvidia.yml", "nvidia"), ("gpu-amd.yml", "amd")])
def test_gpu_workflows(name, label):
    doc = load(name)
    assert "pull_request" not in doc["on"] and "pull_request_target" not in doc["on"], (
        f"{name}: self-hosted GPU runners must not run code from pull requests")
    (job,) = doc["jobs"].values()
    assert job["runs-on"][0] == "self-hosted" and label in job["runs-on"], job["runs-on"]
    assert "vars." in str(job.get("if", "")), f"{name}: guard the job with a repository variable"
    assert any("ci/gpu_tier.py" in c for c in run_commands(doc))
    assert any("upload-artifact" in str(s.get("uses", "")) and "ci/reports" in str(s.get("with", {}))
               for s in job["steps"]), f"{name}: keep ci/reports as an artifact"


@pytest.mark.parametrize("name", NAMES)
def test_schema(name):
    """GitHub's workflow schema (SchemaStore's, vendored by check-jsonschema: no network)."""
    if os.environ.get("CI"):
        import check_jsonschema  # noqa: F401  (CI installs the test extra: a missing linter is a failure)
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema to lint workflows")
    p = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                        "vendor.github-workflows", str(REPO / "ci" / "workflows" / name)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{name} fails the GitHub workflow schema:\n{p.stdout}\n{p.stderr}"


# ------------------------------------------------------------------------------ ci/gpu_tier.py
SAMPLE_TESTS = '''
import pytest
from dataclasses import dataclass

@dataclass(frozen=True)
class Case:
    backend: str
    feature: str
    layout: str
    dtype: str

@pytest.mark.parametrize("case", [Case("triton", "causal", "HND", "fp16"), Case("hip", "plain", "vllm", "bf16")],
                         ids=str)
def test_case(case):
    assert case.backend != "hip", "hip case broke"

@pytest.mark.parametrize("backend,form", [("torch", "NHD")])
def test_named(backend, form):
    pass

def test_skipped():
    pytest.skip("not here")

@pytest.fixture
def broken():
    raise RuntimeError("setup broke")

def test_error(broken):
    pass
'''


def test_gpu_tier_report(tmp_path):
    tests = tmp_path / "test_sample.py"
    tests.write_text(SAMPLE_TESTS)
    out = tmp_path / "reports"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--allow-no-gpu", "--out",
                        str(out), "-m", "not gpu", str(tests)], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path, env=env)
    assert p.returncode == 1, f"one failure and one error must give pytest's exit 1:\n{p.stdout}\n{p.stderr}"
    (md,) = out.glob("*.md")
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["totals"] == {"passed": 2, "failed": 1, "skipped": 1, "error": 1}, data["totals"]
    assert data["by_backend"]["hip"] == {"failed": 1}, data["by_backend"]
    assert data["by_backend"]["triton"] == {"passed": 1} and data["by_backend"]["torch"] == {"passed": 1}
    assert data["by_layout"]["NHD"] == {"passed": 1}, "a `form` parameter counts as the layout"
    assert data["by_feature"]["causal"] == {"passed": 1}
    env_ = data["environment"]
    for k in ("torch", "triton", "python", "commit", "date", "device"):
        assert env_.get(k), f"report lacks {k}: {env_}"
    text = md.read_text()
    for s in ("## By backend", "## By feature", "## By file", "hip case broke", "setup broke",
              f"torch {env_['torch']}", f"triton {env_['triton']}"):
        assert s in text, f"report lacks {s!r}:\n{text}"


def test_gpu_tier_refuses_without_gpu(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2 and "no CUDA or ROCm GPU" in p.stderr, (p.returncode, p.stderr[-1000:])
    assert not list(tmp_path.iterdir())


def test_gpu_tier_report_from_junit(tmp_path):
    """--from-junit reports recorded runs: counts per file and the failures with their messages."""
    xml = tmp_path / "run.xml"
    xml.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_decode" name="test_a[x]" time="1.5"/>'
        '<testcase classname="tests.test_decode" name="test_b" time="0.5"><failure message="boom: rel_err 3"/></testcase>'
        '<testcase classname="tests.test_hip" name="test_c" time="2"><skipped message="no gpu"/></testcase>'
        '</testsuite></testsuites>')
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"device": "Fake GPU", "device_key": "Fake_GPU", "vendor": "nvidia", "arch": "sm_90"}))
    out = tmp_path / "reports"
    rc = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--from-junit", str(xml),
                         "--env-json", str(env), "--out", str(out), "--note", "partial"],
                        capture_output=True, text=True).returncode
    assert rc == 1                                             # a failure recorded: non-zero
    md = (out / "Fake_GPU.md").read_text()
    assert "**Total:** 1 passed, 1 failed, 1 skipped" in md, md
    assert "| tests/test_decode.py | 1 | 1 | 0 |" in md and "boom: rel_err 3" in md and "partial" in md


SLOW_TESTS = '''
import time
import pytest

@pytest.mark.parametrize("i", range(6))
def test_slow(i):
    time.sleep(0.4)
'''


def test_gpu_tier_deadline_leaves_a_report_of_what_ran(tmp_path):
    """--deadline stops starting tests; the report counts those that never ran and says why."""
    tests = tmp_path / "test_slow.py"
    tests.write_text(SLOW_TESTS)
    out = tmp_path / "reports"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--allow-no-gpu", "--out", str(out),
                        "--deadline", "0.5", "--write-every", "0", "-m", "not gpu", str(tests)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    (md,) = out.glob("*.md")
    data = json.loads(md.with_suffix(".json").read_text())
    ran = data["totals"].get("passed", 0)
    assert 1 <= ran < 6 and data["not_run"] == 6 - ran, (data["totals"], data["not_run"], p.stderr[-2000:])
    assert data["status"].startswith("incomplete: the --deadline was reached"), data["status"]
    text = md.read_text()
    assert f"{6 - ran} selected but not run" in text and "**Status:** incomplete" in text, text


def test_gpu_tier_merges_reports_of_split_runs(tmp_path):
    """--merge: the JSON twins of runs split over several calls make one report."""
    tests = tmp_path / "test_sample.py"
    tests.write_text(SAMPLE_TESTS)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    outs = []
    for i, sel in enumerate(("hip or triton", "not (hip or triton)")):
        out = tmp_path / f"r{i}"
        subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--allow-no-gpu", "--out", str(out),
                        "-m", "not gpu", "-k", sel, str(tests)], capture_output=True, text=True, timeout=600,
                       cwd=tmp_path, env=env)
        (js,) = out.glob("*.json")
        outs.append(str(js))
    merged = tmp_path / "merged"
    p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--out", str(merged), "--merge", *outs],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr[-2000:]
    (md,) = merged.glob("*.md")
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["totals"] == {"passed": 2, "failed": 1, "skipped": 1, "error": 1}, data["totals"]
    assert "--merge" in md.read_text()


def test_gpu_tier_merge_forgets_what_a_later_part_ran(tmp_path):
    """A part stopped by its deadline lists the tests it did not reach; merged with a part that
    ran them, the report is complete (exit 0); merged alone it still says what is missing."""
    tests = tmp_path / "test_slow.py"
    tests.write_text(SLOW_TESTS)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    outs = []
    for i, extra in enumerate((["--deadline", "0.5"], [])):
        out = tmp_path / f"r{i}"
        subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--allow-no-gpu", "--out", str(out),
                        "-m", "not gpu", *extra, str(tests)], capture_output=True, text=True, timeout=600,
                       cwd=tmp_path, env=env)
        (js,) = out.glob("*.json")
        outs.append(str(js))
    first = json.loads(Path(outs[0]).read_text())
    assert 1 <= first["not_run"] == len(first["not_run_ids"]) < 6, first["not_run_ids"]

    def merge(*parts):
        out = tmp_path / f"m{len(parts)}"
        p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--out", str(out), "--merge", *parts],
                           capture_output=True, text=True, timeout=300)
        (md,) = out.glob("*.md")
        return p.returncode, json.loads(md.with_suffix(".json").read_text())
    rc, alone = merge(outs[0])
    assert rc != 0 and alone["not_run"] == first["not_run"] and alone["status"].startswith("incomplete"), alone
    rc, both = merge(*outs)
    assert rc == 0 and both["not_run"] == 0 and both["status"] == "" and both["totals"] == {"passed": 6}, both


def test_gpu_tier_merge_counts_only_the_tiers_tests_as_not_run(tmp_path):
    """A part selected with a wider marker leaves CPU tests unrun: the merged GPU tier does not
    owe them, only the gpu-marked tests no part ran."""
    part = tmp_path / "part"
    subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--allow-no-gpu", "--out", str(part),
                    "-m", "gpu or not gpu", "--deadline", "0", "tests/test_merge.py"],
                   capture_output=True, text=True, timeout=600, cwd=REPO,
                   env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    (js,) = part.glob("*.json")
    unrun = set(json.loads(js.read_text())["not_run_ids"])
    gpu = {n for n in unrun if "_gpu[" in n}     # test_merge.py's gpu tests are its *_gpu ones
    assert gpu and unrun - gpu, unrun
    out = tmp_path / "m"
    p = subprocess.run([sys.executable, str(REPO / "ci" / "gpu_tier.py"), "--out", str(out), "--merge", str(js)],
                       capture_output=True, text=True, timeout=300)
    (md,) = out.glob("*.md")
    data = json.loads(md.with_suffix(".json").read_text())
    assert p.returncode != 0 and set(data["not_run_ids"]) == gpu, (data["not_run_ids"], p.stderr[-2000:])


def _gpu_tier_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_tier", REPO / "ci" / "gpu_tier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_tier_labels_tests_that_xdist_workers_ran():
    """Under xdist the controller collects nothing: the labels come from the parameters that
    tests/conftest.py attaches to each report (a matrix Case travels by its axes)."""
    from types import SimpleNamespace
    gt = _gpu_tier_module()
    col = gt.Collector()
    params = {"form": "vllm", "dtype": "torch.bfloat16", "case": {"__attrs__": {"backend": "hip"}}}
    report = SimpleNamespace(nodeid="tests/test_x.py::test_gpu_matrix[vllm-3]", when="call", outcome="passed",
                             duration=1.0, longreprtext="", user_properties=[("params", params)])
    col.pytest_runtest_logreport(report)
    r = col.records[report.nodeid]
    assert (r["layout"], r["dtype"], r["backend"], r["feature"]) == ("vllm", "bf16", "hip", "matrix"), r


def test_gpu_tier_relabel_collects_this_repository():
    """--relabel's collection: parameters from tests/conftest.py, the backend from a module's BACKEND."""
    gt = _gpu_tier_module()
    params = gt.collected_params(["tests/test_hip.py", "tests/test_decode.py"])
    hip = [k for k in params if k.startswith("tests/test_hip.py::test_matrix[vllm-16-128-4-")]
    assert len(hip) == 2, sorted(params)[:5]
    labels = [gt.labels(k, params[k]) for k in hip]
    assert {x["layout"] for x in labels} == {"vllm"} and {x["dtype"] for x in labels} == {"fp16", "bf16"}
    assert {x["backend"] for x in labels} == {"hip"}
    dec = [k for k in params if k.startswith("tests/test_decode.py::test_decode_gpu_matrix")]
    assert dec and all(gt.labels(k, params[k])["backend"] == "triton" for k in dec)
