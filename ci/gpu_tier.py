#!/usr/bin/env python
"""Run the GPU tier on whatever GPU is here (NVIDIA or AMD) and write ci/reports/<device>.md.

    python ci/gpu_tier.py                       # pytest -m gpu tests/, report to ci/reports/
    python ci/gpu_tier.py -k decode -x          # extra arguments go to pytest
    python ci/gpu_tier.py --out /tmp/r --allow-no-gpu -m "not gpu" tests/test_layouts.py   # dry run
    python ci/gpu_tier.py --deadline 400 -n 14  # time-boxed: stop starting tests after 400 s

A time-boxed or interrupted run still leaves a report: it is rewritten every --write-every seconds
while tests run, and at the end it counts the selected tests that never ran ("not run") and says
why the run stopped.

The report counts passed / failed / skipped / errors per test file, per backend, per feature, per
layout and per dtype. Backend / feature / layout / dtype come from the tests' parameters: a
tests/matrix.py `Case` parameter, or parameters named backend, feature, layout (or form), dtype;
tests without them count under "-". It also names the device, the driver, torch, Triton and
Python versions, the date and the commit, and lists every failure with its message's first line.
A JSON twin (<device>.json) carries the same numbers and every test's outcome.

Exit status: pytest's (0 when everything selected passed), 2 when no GPU is present (unless
--allow-no-gpu).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform as _platform
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXES = ("file", "backend", "feature", "layout", "dtype")
_ALIASES = {"backend": ("backend",), "feature": ("feature",), "layout": ("layout", "form"),
            "dtype": ("dtype",)}


def _dtype_name(v) -> str:
    s = str(v)
    return {"torch.float16": "fp16", "torch.bfloat16": "bf16", "torch.float32": "fp32"}.get(s, s)


def labels(nodeid: str, params: dict) -> dict:
    """The report's axes for one test: its file, and backend / feature / layout / dtype from its
    parameters (a matrix Case's fields first, then parameters named after the axis)."""
    out = {"file": nodeid.split("::")[0]}
    for axis, names in _ALIASES.items():
        val = None
        for p in params.values():
            if val is None and hasattr(p, axis) and not isinstance(p, (str, bytes, dict)):
                val = getattr(p, axis)
        for n in names:
            if val is None and n in params:
                val = params[n]
        out[axis] = "-" if val is None else (_dtype_name(val) if axis == "dtype" else str(val))
    if out["backend"] == "-":
        # test names like test_hip.py / test_torch_... say the backend when no parameter does
        m = re.search(r"test_(hip|triton|torch)\b", nodeid)
        if m:
            out["backend"] = m.group(1)
    if out["feature"] == "-":
        # no feature parameter: the test function says what it exercises (matrix, options, cuda_graph...)
        out["feature"] = nodeid.split("::")[-1].split("[")[0].removeprefix("test_").removeprefix("gpu_")
    return out


def params_from_summary(summary: dict) -> dict:
    """tests/conftest.py's summary of a test's parameters back into what labels() reads."""
    return {k: SimpleNamespace(**v["__attrs__"]) if isinstance(v, dict) and "__attrs__" in v else v
            for k, v in summary.items()}


class Collector:
    """pytest plugin: one record per test (setup errors, call outcome, skips). deadline (a
    time.time() value): past it, the session stops starting tests (with xdist the workers finish
    the tests they hold). on_record(collector) is called after every record, for partial reports."""

    def __init__(self, deadline: float | None = None, on_record=None):
        self.params = {}
        self.records = {}
        self.selected = set()
        self.deadline = deadline
        self.on_record = on_record
        self.session = None
        self.stopped = ""

    def pytest_sessionstart(self, session):
        self.session = session

    @pytest.hookimpl(trylast=True)               # after tests/conftest.py attached the parameters
    def pytest_collection_modifyitems(self, items):
        for it in items:
            cs = getattr(it, "callspec", None)
            summary = dict(it.user_properties).get("params")
            self.params[it.nodeid] = (params_from_summary(summary) if summary is not None
                                      else dict(cs.params) if cs else {})

    def pytest_collection_finish(self, session):
        self.selected.update(it.nodeid for it in session.items)

    @pytest.hookimpl(optionalhook=True)          # an xdist hook: unknown without xdist
    def pytest_xdist_node_collection_finished(self, node, ids):
        # Under xdist the controller collects nothing itself; the workers' lists are what runs.
        # (Deselection by -m / -k happens on the workers, so these are the selected tests.)
        self.selected.update(ids)

    def _check_deadline(self):
        if self.deadline is not None and not self.stopped and time.time() > self.deadline:
            self.stopped = "the --deadline was reached"
            if self.session is not None:
                self.session.shouldstop = f"gpu_tier: {self.stopped}"

    def pytest_runtest_logreport(self, report):
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            outcome = {"passed": "xpassed" if xfail else "passed",
                       "skipped": "xfailed" if xfail else "skipped"}.get(report.outcome, "failed")
        elif report.outcome == "failed":
            outcome = "error"                       # setup or teardown failed
        elif report.outcome == "skipped":
            outcome = "skipped"                     # skipped in setup (skip marks, fixtures)
        else:
            return                                  # a passing setup / teardown says nothing
        prev = self.records.get(report.nodeid)
        if prev is not None and prev["outcome"] in ("failed", "error"):
            return                                  # a teardown after a failure keeps the failure
        msg = ""
        if report.outcome != "passed":
            text = report.longreprtext or ""
            errs = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
            msg = (errs[0] if errs else (text.strip().splitlines() or [""])[-1])[:300]
        params = self.params.get(report.nodeid)
        if params is None:          # an xdist worker ran it: the parameters came with the report
            params = params_from_summary(dict(report.user_properties).get("params", {}))
        self.records[report.nodeid] = {
            "nodeid": report.nodeid, "outcome": outcome, "seconds": round(report.duration, 3),
            "message": msg, **labels(report.nodeid, params)}
        self._check_deadline()
        if self.on_record is not None:
            self.on_record(self)

    def not_run(self) -> int:
        return len(self.not_run_ids())

    def not_run_ids(self) -> list:
        return sorted(self.selected - set(self.records))


def collected_params(paths: list, gpu_ids: set | None = None) -> dict:
    """nodeid -> parameters, from collecting these test files here (no test runs); gpu_ids, when
    given, receives the nodeids marked gpu."""
    class Params:
        def __init__(self):
            self.params = {}

        def pytest_collection_modifyitems(self, items):
            for it in items:        # what tests/conftest.py attached, as a run's reports carry it
                self.params[it.nodeid] = params_from_summary(dict(it.user_properties).get("params", {}))
                if gpu_ids is not None and it.get_closest_marker("gpu") is not None:
                    gpu_ids.add(it.nodeid)

    c = Params()
    _collect(paths, c)
    return c.params


def selected_ids(paths: list, marker: str) -> set:
    """The nodeids of these test files that -m marker selects, collected here."""
    class Selected:
        ids: set = set()

        def pytest_collection_finish(self, session):
            self.ids = {it.nodeid for it in session.items}

    c = Selected()
    _collect(paths, c, "-m", marker)
    return c.ids


def _collect(paths: list, plugin, *args) -> None:
    """pytest's collection of these test files (no test runs), seen by plugin."""
    cwd = os.getcwd()
    os.chdir(REPO)                  # nodeids are relative to the repository root
    try:
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *args, *paths], plugins=[plugin])
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------------------------------
# Environment


def _cmd(args) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool means "unknown"
        return ""


def environment() -> dict:
    import torch
    import triton
    env = {"python": _platform.python_version(), "torch": torch.__version__,
           "triton": triton.__version__, "host": _platform.node()}
    try:
        from attn import platform as ap
        p = ap.get()
        env.update(vendor=p.vendor, arch=p.arch, device=p.device_name, device_key=p.config_key,
                   num_sms=p.num_sms)
    except Exception as e:  # noqa: BLE001
        env.update(vendor="cpu", arch="cpu", device="cpu", device_key="cpu", platform_error=str(e))
    if env["vendor"] == "nvidia":
        env["driver"] = _cmd(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
                             ).splitlines()[:1] or ["?"]
        env["driver"] = env["driver"][0]
        env["runtime"] = f"CUDA {torch.version.cuda}"
    elif env["vendor"] == "amd":
        drv = ""
        try:
            with open("/sys/module/amdgpu/version") as f:
                drv = f.read().strip()
        except OSError:
            m = re.search(r"Driver version:\s*(\S+)", _cmd(["rocm-smi", "--showdriverversion"]))
            drv = m.group(1) if m else "?"
        env["driver"] = drv or "?"
        env["runtime"] = f"HIP {torch.version.hip}"
    from attn.bench import source_commit
    env["commit"] = source_commit(REPO)
    env["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env


# ------------------------------------------------------------------------------------------
# Report

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def tally(records: list, axis: str) -> dict:
    t = defaultdict(Counter)
    for r in records:
        t[r[axis]][r["outcome"]] += 1
    return dict(sorted(t.items()))


def markdown(env: dict, records: list, pytest_args: list, rc: int, wall: float, not_run: int = 0,
             status: str = "") -> str:
    total = Counter(r["outcome"] for r in records)
    cols = [o for o in OUTCOMES if total[o] or o in ("passed", "failed", "skipped")]
    lines = [f"# GPU tier: {env.get('device', '?')}", "",
             f"- device: {env.get('device')} ({env.get('vendor')}, {env.get('arch')}, "
             f"{env.get('num_sms', '?')} SMs/CUs)",
             f"- driver: {env.get('driver', '?')}; {env.get('runtime', '')}",
             f"- torch {env['torch']}, triton {env['triton']}, python {env['python']}",
             f"- commit {env['commit']}, {env['date']}",
             f"- command: `python ci/gpu_tier.py {' '.join(pytest_args)}` (pytest exit {rc}, "
             f"{wall / 60:.1f} min)", ""]
    if status:
        lines += [f"**Status:** {status}", ""]
    lines += ["**Total:** " + ", ".join(f"{total[o]} {o}" for o in cols)
              + (f", {not_run} selected but not run" if not_run else ""), ""]
    for axis in AXES:
        t = tally(records, axis)
        if axis != "file" and set(t) == {"-"}:
            continue
        lines += [f"## By {axis}", "", "| " + axis + " | " + " | ".join(cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        lines += ["| " + k + " | " + " | ".join(str(c[o]) for o in cols) + " |" for k, c in t.items()]
        lines.append("")
    bad = [r for r in records if r["outcome"] in ("failed", "error")]
    if bad:
        lines += ["## Failures", ""]
        lines += [f"- `{r['nodeid']}`: {r['message']}" for r in bad[:200]]
        if len(bad) > 200:
            lines.append(f"- ... and {len(bad) - 200} more (see the JSON twin)")
        lines.append("")
    return "\n".join(lines)


def records_from_junit(paths: list) -> list:
    """Records from pytest --junitxml files (runs made without this script, e.g. with xdist and a
    time limit); parameters are not in the XML, so only the file axis is labelled."""
    import xml.etree.ElementTree as ET
    records = {}
    for path in paths:
        for tc in ET.parse(path).iter("testcase"):
            cls, name = tc.get("classname"), tc.get("name")
            if not cls or not name:
                continue
            nodeid = cls.replace(".", "/") + ".py::" + name
            outcome, msg = "passed", ""
            for child in tc:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed"}.get(child.tag, child.tag)
                    msg = (child.get("message") or "")[:300]
            records[nodeid] = {"nodeid": nodeid, "outcome": outcome, "seconds": float(tc.get("time") or 0),
                               "message": msg, **labels(nodeid, {})}
    return sorted(records.values(), key=lambda r: r["nodeid"])


def write_report(out: str, env: dict, records: list, shown_args: list, rc: int, wall: float, note: str = "",
                 not_run: int = 0, status: str = "", not_run_ids: list | None = None) -> str:
    os.makedirs(out, exist_ok=True)
    key = env.get("device_key") or "cpu"
    md_path = os.path.join(out, f"{key}.md")
    with open(md_path, "w") as f:
        md = markdown(env, records, shown_args, rc, wall, not_run, status)
        if note:
            md = md.replace("\n\n**Total:**", f"\n\n{note}\n\n**Total:**", 1)
        f.write(md)
    with open(os.path.join(out, f"{key}.json"), "w") as f:
        json.dump({"environment": env, "pytest_exit": rc, "wall_seconds": round(wall, 1), "status": status,
                   "not_run": not_run, "not_run_ids": not_run_ids,
                   "totals": dict(Counter(r["outcome"] for r in records)),
                   **{f"by_{ax}": {k: dict(v) for k, v in tally(records, ax).items()} for ax in AXES},
                   "tests": records}, f, indent=1)
    return md_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Unknown arguments are passed to pytest.")
    ap.add_argument("--out", default=os.path.join(REPO, "ci", "reports"),
                    help="report folder (default ci/reports)")
    ap.add_argument("--allow-no-gpu", action="store_true",
                    help="run even without a GPU (to check this script; the report says 'cpu')")
    ap.add_argument("-m", dest="marker", default="gpu", help="pytest marker expression (default gpu)")
    ap.add_argument("--from-junit", nargs="+", metavar="XML",
                    help="report on these pytest --junitxml files instead of running pytest")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="report on these JSON twins of earlier reports (runs split over several calls) "
                         "instead of running pytest")
    ap.add_argument("--relabel", action="store_true",
                    help="with --merge: label the tests again from a collection here (reports written "
                         "before the parameters travelled with xdist's reports say '-' for them)")
    ap.add_argument("--env-json", help="with --from-junit: the environment of those runs (device, "
                                       "driver, torch, triton, commit, date, ...) as a JSON file")
    ap.add_argument("--note", default="", help="a line added under the report's header (e.g. what was not run)")
    ap.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                    help="stop starting tests this many seconds after the start; the report counts the rest "
                         "as not run")
    ap.add_argument("--write-every", type=float, default=30.0, metavar="SECONDS",
                    help="rewrite the (partial) report at most this often while tests run (default 30)")
    a, rest = ap.parse_known_args(argv)
    if a.merge:
        parts = [json.load(open(x)) for x in a.merge]
        env = dict(parts[0]["environment"])
        dates = sorted({p["environment"].get("date", "?") for p in parts})
        commits = sorted({p["environment"].get("commit", "?") for p in parts})
        env.update(date=" / ".join(dates), commit=" / ".join(commits))
        records = {}
        for p in parts:
            records.update({r["nodeid"]: r for r in p["tests"]})
        ran = set(records)
        records = sorted(records.values(), key=lambda r: r["nodeid"])
        gpu_ids: set = set()
        files = sorted({r["nodeid"].split("::")[0] for r in records})
        params = collected_params(files, gpu_ids) if a.relabel or any(
            p.get("not_run") and p.get("not_run_ids") is None for p in parts) else {}
        if a.relabel:
            records = [{**r, **labels(r["nodeid"], params.get(r["nodeid"], {}))} for r in records]
        # A test one part did not reach counts as not run unless another part ran it. Reports
        # from before not_run_ids: the gpu tests of the part's files that it has no record of,
        # collected here: at least the part's count unless tests were removed since (else the
        # count stands); tests added since make it an overestimate, never an underestimate.
        missing, unknown = set(), 0
        for p in parts:
            ids = p.get("not_run_ids")
            if ids is None and p.get("not_run"):
                mine = {r["nodeid"] for r in p["tests"]}
                pfiles = {n.split("::")[0] for n in mine}
                guess = {n for n in gpu_ids if n.split("::")[0] in pfiles} - mine
                ids = sorted(guess) if len(guess) >= int(p["not_run"]) else None
                if ids is None:
                    unknown += int(p["not_run"])
            missing.update(ids or ())
        # The tier is the gpu-marked tests: a part selected with a wider marker leaves CPU tests
        # unrun that no GPU report owes.
        # (Files not in this checkout cannot be judged: their tests stay counted.)
        here = {f for f in {n.split("::")[0] for n in missing} if os.path.isfile(os.path.join(REPO, f))}
        if here:
            chosen = selected_ids(sorted(here), a.marker)
            missing = {n for n in missing if n.split("::")[0] not in here or n in chosen}
        not_run = len(missing - ran) + unknown
        # A part stopped by its deadline exits 2; once other parts ran what it left, the whole passed.
        rc = 1 if any(r["outcome"] in ("failed", "error") for r in records) else (
            max(p["pytest_exit"] for p in parts) if not_run else 0)
        status = "; ".join(p["status"] for p in parts if p.get("status")) if not_run else ""
        shown = ["--merge"] + [os.path.relpath(x, REPO) for x in a.merge] + (["--relabel"] if a.relabel else [])
        md_path = write_report(a.out, env, records, shown, rc, sum(float(p["wall_seconds"]) for p in parts),
                               a.note, not_run=not_run, status=status, not_run_ids=sorted(missing - ran))
        print(f"gpu_tier: report written to {md_path}", file=sys.stderr)
        return rc
    if a.from_junit:
        env = json.load(open(a.env_json)) if a.env_json else {}
        env.setdefault("torch", "?")
        env.setdefault("triton", "?")
        env.setdefault("python", "?")
        env.setdefault("commit", "?")
        env.setdefault("date", "?")
        records = records_from_junit(a.from_junit)
        shown = ["--from-junit"] + [os.path.relpath(x, REPO) for x in a.from_junit]
        rc = 1 if any(r["outcome"] in ("failed", "error") for r in records) else 0
        md_path = write_report(a.out, env, records, shown, rc, sum(r["seconds"] for r in records), a.note)
        print(f"gpu_tier: report written to {md_path}", file=sys.stderr)
        return rc

    import torch
    if not torch.cuda.is_available():
        # the CPU tier's conftest chooses the interpreter before kernel modules load; so must we,
        # since environment() imports attn
        os.environ.setdefault("TRITON_INTERPRET", "1")
    env = environment()
    if env["vendor"] == "cpu" and not a.allow_no_gpu:
        print("gpu_tier: no CUDA or ROCm GPU visible to torch; nothing to run "
              "(--allow-no-gpu to run anyway)", file=sys.stderr)
        return 2
    paths = [x for x in rest if not x.startswith("-") and os.path.exists(x.split("::")[0])]
    args = ["-m", a.marker, "-p", "no:cacheprovider", "-q", "-rN"] + rest
    if not paths:
        args.append(os.path.join(REPO, "tests"))
    shown = ["-m", a.marker] + rest + ([f"--deadline {a.deadline:g}"] if a.deadline is not None else [])
    t0 = time.time()
    last = [t0]

    def partial(c):
        # A report that survives a killed run: rewritten while tests run, marked as partial.
        if time.time() - last[0] >= a.write_every:
            last[0] = time.time()
            write_report(a.out, env, sorted(c.records.values(), key=lambda r: r["nodeid"]), shown, -1,
                         time.time() - t0, not_run=c.not_run(), status="partial: the run was still going",
                         not_run_ids=c.not_run_ids())

    col = Collector(deadline=None if a.deadline is None else t0 + a.deadline, on_record=partial)
    rc = int(pytest.main(args, plugins=[col]))
    wall = time.time() - t0
    records = sorted(col.records.values(), key=lambda r: r["nodeid"])
    not_run = col.not_run()
    status = ""
    if not_run:
        why = col.stopped or {2: "interrupted", 3: "pytest internal error"}.get(rc, f"pytest exit {rc}")
        status = f"incomplete: {why}; {not_run} of {len(col.selected)} selected tests did not run"
    md_path = write_report(a.out, env, records, shown, rc, wall, not_run=not_run, status=status,
                           not_run_ids=col.not_run_ids())
    print(f"gpu_tier: report written to {md_path}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
