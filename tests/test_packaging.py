"""One distribution, one import name: layouts/, triton_kernels/ and hip/ install under attn, and
`import hip` from the repository root stays hip-python's."""
import glob
import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("pyproject.toml", "README.md", "attn", "layouts", "triton_kernels", "hip")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` (not editable) of a copy of the sources into a --target folder."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = os.path.join(REPO, name)
        if os.path.isdir(p):
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif os.path.exists(p):
            shutil.copy(p, src / name)
    target = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", "-q", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return target


def test_layout_of_the_install(installed):
    top = sorted(os.listdir(installed))
    for bad in ("layouts", "triton_kernels", "hip", "tests", "benchmarks", "ci"):
        assert bad not in top, f"top-level {bad!r} installed: {top}"
    assert (installed / "attn" / "__init__.py").exists()
    assert (installed / "attn" / "layouts" / "__init__.py").exists()
    assert (installed / "attn" / "layouts" / "kvcache.py").exists()
    assert (installed / "attn" / "triton_kernels" / "__init__.py").exists()
    assert (installed / "attn" / "reference" / "prefill.py").exists()
    # Every file of hip/ (sources, headers, launcher modules) lands in attn/hip.
    for f in glob.glob(os.path.join(REPO, "hip", "*")):
        name = os.path.basename(f)
        if name.endswith((".py", ".hip", ".h")):
            assert (installed / "attn" / "hip" / name).exists(), f"hip/{name} not installed as attn/hip/{name}"
    for f in glob.glob(os.path.join(REPO, "attn", "configs", "**", "*.json"), recursive=True):
        rel = os.path.relpath(f, os.path.join(REPO, "attn"))
        assert (installed / "attn" / rel).exists(), f"config {rel} not installed"


def test_installed_copy_imports(installed, tmp_path):
    code = ("import attn, attn.layouts, attn.triton_kernels, attn.reference, os;"
            "print(attn.__file__); print(attn.layouts.__file__); print(attn.triton_kernels.__file__);"
            "import importlib.util as u; s = u.find_spec('attn.hip'); print(s and list(s.submodule_search_locations))")
    env = dict(os.environ, PYTHONPATH=str(installed), PYTHONNOUSERSITE="1")
    # -I would drop PYTHONPATH; -S would drop site-packages (torch): run from an empty folder instead,
    # with the editable install's finder shadowed by the target folder first on sys.path.
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split("\n")
    for p in paths[:3]:
        assert p.startswith(str(installed)), r.stdout
    if glob.glob(os.path.join(REPO, "hip", "*.py")):
        assert str(installed / "attn" / "hip") in paths[3], r.stdout


def test_hip_folder_is_not_a_top_level_package():
    # With an __init__.py, `import hip` run from the repository root would find this folder first
    # (the current directory leads sys.path) and shadow hip-python.
    assert not os.path.exists(os.path.join(REPO, "hip", "__init__.py"))


def _hip_python_installed() -> bool:
    try:
        metadata.distribution("hip-python")
        return True
    except metadata.PackageNotFoundError:
        return False


def test_import_hip_from_repo_root_is_hip_python():
    code = ("import hip, os, sys; print(getattr(hip, '__file__', None)); print(list(hip.__path__));"
            "import importlib.util as u; print(u.find_spec('hip.backend') is not None);"
            "print(u.find_spec('hip.compile') is not None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    if not _hip_python_installed():
        pytest.skip("hip-python not installed (pip install 'attn[hip]')")
    assert r.returncode == 0, r.stderr
    file_, path, has_backend, has_compile = r.stdout.split("\n")[:4]
    ours = os.path.join(REPO, "hip")
    assert file_ != "None" and not file_.startswith(ours), f"`import hip` from the repo root gave {file_}"
    assert ours not in path, f"hip.__path__ includes our folder: {path}"
    assert has_backend == "False" and has_compile == "False", "our launcher modules are importable as hip.*"
    r = subprocess.run([sys.executable, "-c", "from hip import hip, hiprtc"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr


def test_attn_hip_importable_from_anywhere(tmp_path):
    if not glob.glob(os.path.join(REPO, "hip", "*.py")):
        pytest.skip("hip/ has no modules yet")
    mod = os.path.basename(sorted(glob.glob(os.path.join(REPO, "hip", "*.py")))[0])[:-3]
    for cwd in (REPO, tmp_path):
        r = subprocess.run([sys.executable, "-c", f"import attn.hip.{mod} as m; print(m.__name__)"],
                           capture_output=True, text=True, cwd=cwd, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == f"attn.hip.{mod}", (cwd, r.stderr)
