"""`python -m attn info` and `python -m attn demo`, run as a user would (fresh processes)."""
import json
import re
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, env=None, timeout=240):
    e = dict(os.environ)
    e.pop("TRITON_INTERPRET", None)              # the CLI must manage it itself
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "attn", *args], capture_output=True, text=True, cwd=REPO,
                          env=e, timeout=timeout)


def test_help_lists_commands():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    for cmd in ("info", "demo"):
        assert cmd in r.stdout
    r = _run()
    assert r.returncode == 2 and "info" in r.stdout
    r = _run("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_info_text():
    r = _run("info")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for needle in ("platform: vendor=", "versions: torch=", "triton=", "hip-python=", "backends",
                   "prefill", "decode", "merge_state", "hip launcher"):
        assert needle in out, f"{needle!r} missing from:\n{out}"
    # Every (op, backend) line says ok or why not.
    lines = [ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()[:1] and
             ln.split()[0] in ("prefill", "decode", "merge_state", "merge_states")]
    assert len(lines) == 12, out
    assert all(len(ln.split()) >= 3 for ln in lines), out


def test_info_json():
    r = _run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["platform"]["vendor"] in ("nvidia", "amd", "cpu")
    assert info["versions"]["torch"] and info["versions"]["triton"]
    assert info["backends"]["prefill"]["torch"] == "ok"
    if info["platform"]["vendor"] == "cpu":
        assert info["devices"] == []
        assert "GPU" in info["backends"]["decode"]["triton"] or info["backends"]["decode"]["triton"].startswith(
            "not registered")
    assert isinstance(info["hip"]["ok"], bool) and isinstance(info["hip"]["reason"], str)


def test_demo():
    r = _run("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo: all checks passed" in r.stdout, r.stdout
    for step in ("write_kv", "convert", "prefill", "decode"):
        assert step in r.stdout
    if "cuda" not in r.stdout.lower():
        assert "Triton interpreter" in r.stdout or "torch reference" in r.stdout, r.stdout


def test_demo_options():
    r = _run("demo", "--dtype", "fp16", "--layouts", "HND,ragged", "--page-size", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HND" in r.stdout and "ragged" in r.stdout


def test_commands_registry_skips_missing(monkeypatch):
    from attn import cli
    monkeypatch.setitem(cli.COMMANDS, "nothing_here", "attn.no_such_command_module")
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["nothing_here"])
    assert cli.main(["info", "--json"]) == 0


def test_readme_example_runs():
    """The README's 10-line example, on the CPU (float32) when there is no GPU."""
    import re

    import torch
    src = open(os.path.join(REPO, "README.md")).read()
    code = re.findall(r"```python\n(.*?)```", src, re.S)[0]
    assert len(code.strip().splitlines()) <= 12
    if not torch.cuda.is_available():
        code = code.replace('"cuda"', '"cpu"').replace("torch.float16", "torch.float32")
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["out"].shape == (2, 32, 128) and not torch.isnan(scope["out"]).any()


def test_readme_commands_match_ci():
    """.ci/run runs exactly the README's test command."""
    readme = open(os.path.join(REPO, "README.md")).read()
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    cmd = re.search(r'^(pip install -e "\.\[test\]" && python -m pytest -q)', readme, re.M)
    assert cmd, "README's test command not found"
    assert 'TEST_COMMAND=\'pip install -e ".[test]" && python -m pytest -q\'' in ci
