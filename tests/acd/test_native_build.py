"""The compiled build of the core (acd/native.py, setup.py): used when it matches its sources, never when it
does not, and the pure sources stand in with a warning that says why."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acd import native

ACD = Path(native.__file__).resolve().parent
PROBE = "import acd.router, acd.native as n; print(n.build())"


def test_the_core_in_use_is_the_compiled_one_unless_pure_is_asked_for() -> None:
    # scripts/test installs the package, which compiles the core (gcc is on every machine of the project);
    # a pure core here means the build failed or a source changed since: `pip install -e .` again
    wants_pure = bool(os.environ.get(native.PURE_ENV))
    assert native.compiled() is not wants_pure, native.build()
    from engine.core import SNAPSHOT_FORMAT  # snapshots say which build wrote them

    assert SNAPSHOT_FORMAT.endswith("-pure" if wants_pure else "-mypyc")


def _copy_of_the_package(tmp_path: Path) -> Path:
    built = [p for p in ACD.iterdir() if p.suffix == ".so" or p.name == native.BUILD_RECORD]
    if not any(p.name == native.BUILD_RECORD for p in built):
        pytest.fail("no compiled build to check: `pip install -e .` (scripts/test does) compiles the core")
    shutil.copytree(ACD, tmp_path / "acd", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "acd"


def _probe(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, "PYTHONWARNINGS")}
    return subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**clean, "PYTHONPATH": str(root), **env}, check=True)


def test_a_build_that_matches_its_sources_is_used(tmp_path: Path) -> None:
    _copy_of_the_package(tmp_path)
    done = _probe(tmp_path)
    assert done.stdout.strip() == "compiled (mypyc)"
    assert done.stderr == ""


def test_an_edited_source_is_run_as_written_with_a_warning_saying_why(tmp_path: Path) -> None:
    copy = _copy_of_the_package(tmp_path)
    with (copy / "strategies.py").open("a") as f:
        f.write("\n# an edit made after the build\n")
    done = _probe(tmp_path)
    # every compiled module comes from its source, not only the edited one: they call one another natively
    assert done.stdout.strip() == (
        "pure Python (acd/strategies.py changed since the build (pip install -e . compiles it again))")
    assert "RuntimeWarning: acd: running the routing core as pure Python: acd/strategies.py changed" in done.stderr


def test_a_build_without_its_record_is_not_trusted(tmp_path: Path) -> None:
    copy = _copy_of_the_package(tmp_path)
    (copy / native.BUILD_RECORD).unlink()
    done = _probe(tmp_path)
    assert done.stdout.strip() == f"pure Python (the build has no readable {native.BUILD_RECORD})"
    assert "RuntimeWarning" in done.stderr


def test_pure_python_on_request_says_nothing_more(tmp_path: Path) -> None:
    _copy_of_the_package(tmp_path)
    done = _probe(tmp_path, **{native.PURE_ENV: "1"})
    assert done.stdout.strip() == f"pure Python ({native.PURE_ENV} is set)"
    assert done.stderr == ""


def test_a_router_pickles_and_comes_back_equal_in_the_build_in_use(kit) -> None:
    center = kit.make_center({"q": {"skills": {"tax": 3}, "wrap_up_s": 10, "steps": [{"after_s": 30,
                                                                                     "level_drop": 2}]}},
                             {"ann": {"skills": {"tax": 5}}, "bob": {"skills": {"tax": 2}}}, timezone="America/Toronto")
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    for i in range(3):
        j("enqueue", kit.spec(f"c{i}", needs={"tax": 4}), 1.0 + i)
    copy = pickle.loads(pickle.dumps(j.router, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy.snapshot() == j.router.snapshot()
    # and it goes on as the original does: the same commands give the same events
    for router in (j.router, copy):
        router.login("bob", 40.0, ready=True)
    assert [e for e in copy.tick(45.0)] == [e for e in j.router.tick(45.0)]
    assert copy.snapshot() == j.router.snapshot()
