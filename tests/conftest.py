"""Test tiers: the CPU tier runs everywhere (Triton kernels through the interpreter); tests marked
@pytest.mark.gpu need a CUDA or ROCm GPU and are skipped without one.

Inputs are random and fresh on every run; the session seed is printed in the header and
ATTN_TEST_SEED=<seed> replays it. Fixtures: `gen` (a per-test torch.Generator), `device`.
"""
import os
import sys

# The interpreter must be chosen before any @triton.jit kernel module is imported: Triton picks
# interpreted or compiled functions at decoration time.
try:
    import torch
    _HAS_GPU = torch.cuda.is_available()
except Exception:                                     # pragma: no cover
    _HAS_GPU = False
if not _HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))         # `import kvgen` from any test module

import pytest  # noqa: E402

import kvgen  # noqa: E402


def pytest_report_header(config):
    return [f"attn: ATTN_TEST_SEED={kvgen.session_seed()} gpu={_HAS_GPU} "
            f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '')}"]


_AXES = ("backend", "feature", "layout", "dtype")


def _param_summary(v):
    """A parameter as the report needs it (ci/gpu_tier.py): a matrix Case by its axes, else its str."""
    axes = {a: str(getattr(v, a)) for a in _AXES if not isinstance(v, (str, bytes, dict)) and hasattr(v, a)}
    return {"__attrs__": axes} if axes else str(v)


def pytest_collection_modifyitems(config, items):
    # The parameters travel with each test's reports, so that ci/gpu_tier.py labels tests run by
    # xdist workers too (its own collection hook never sees their items).
    # A module's BACKEND says which backend its tests exercise when no parameter does.
    for item in items:
        cs = getattr(item, "callspec", None)
        params = {k: _param_summary(v) for k, v in (cs.params.items() if cs else ())}
        backend = getattr(getattr(item, "module", None), "BACKEND", None)
        if backend and "backend" not in params:
            params["backend"] = backend
        item.user_properties.append(("params", params))
    if _HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a CUDA or ROCm GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen(request):
    """A torch.Generator seeded from the session seed and this test's id."""
    return kvgen.make_gen(request.node.nodeid)


@pytest.fixture
def device():
    return "cuda" if _HAS_GPU else "cpu"


@pytest.fixture(autouse=True)
def _restore_validation():
    """Tests that change attn.set_validation never leak their level into the next test."""
    import attn
    level = attn.get_validation()
    yield
    attn.set_validation(level)


def pytest_runtest_makereport(item, call):
    # Say how to replay a failure with the same random inputs.
    if call.when == "call" and call.excinfo is not None:
        item.add_report_section("call", "seed", f"replay with ATTN_TEST_SEED={kvgen.session_seed()}")
