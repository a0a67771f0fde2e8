"""The compiled build of the core: which modules it covers, and the check that it matches their sources.

setup.py compiles the modules of COMPILED with mypyc and records the digest of each source it compiled
(BUILD_RECORD). Python would import a compiled module ahead of its source even after the source changed,
so on import of `acd` this module compares the digests: if any source differs from what was compiled (an
edit since the last `pip install -e .`), or SWITCHBOARD_PURE_PYTHON is set, every compiled module is
imported from its source instead, all together, since compiled modules call one another natively.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

# the routing core proper, with the events it makes, and the simulator that drives it
COMPILED = ("model", "eligibility", "local_days", "line_index", "reservations", "stats", "strategies", "events",
            "timers", "heaps", "idle_index", "router", "simulate")
BUILD_RECORD = "native-build.json"
PURE_ENV = "SWITCHBOARD_PURE_PYTHON"
PACKAGE_DIR = Path(__file__).resolve().parent


def source_digests(package_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((package_dir / f"{name}.py").read_bytes()).hexdigest() for name in COMPILED}


def _built(package_dir: Path) -> list[str]:
    return [name for name in COMPILED
            if any((package_dir / f"{name}{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)]


def _why_not_compiled(package_dir: Path, built: list[str]) -> str | None:
    """None when the compiled build may be used, else the reason it is not; `built`: what _built found."""
    if not built:
        return "not compiled (no C compiler at install, or installed pure)"
    if os.environ.get(PURE_ENV):
        return f"{PURE_ENV} is set"
    if len(built) != len(COMPILED):
        return f"the build is incomplete (compiled: {', '.join(built)})"
    try:
        record = json.loads((package_dir / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return f"the build has no readable {BUILD_RECORD}"
    changed = [name for name, digest in source_digests(package_dir).items() if record.get(name) != digest]
    if changed:
        return (f"acd/{', acd/'.join(f'{n}.py' for n in changed)} changed since the build "
                "(pip install -e . compiles it again)")
    return None


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Import the core's compiled modules from their sources."""

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != "acd" or name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, PACKAGE_DIR / f"{name}.py")


def _select() -> str | None:
    built = _built(PACKAGE_DIR)
    reason = _why_not_compiled(PACKAGE_DIR, built)
    if reason is not None and built:
        if not os.environ.get(PURE_ENV):
            warnings.warn(f"acd: running the routing core as pure Python: {reason}", RuntimeWarning, stacklevel=3)
        sys.meta_path.insert(0, _SourceFirst())
    return reason


# setup.py reads this file as a plain module: only the package's import chooses
PURE_REASON = _select() if __name__ == "acd.native" else None


def compiled() -> bool:
    """Whether the router in use is the compiled build."""
    from acd import router

    return not (router.__file__ or "").endswith(".py")


def build() -> str:
    """What runs: "compiled (mypyc)" or "pure Python (<why>)", as the benchmarks report it."""
    return "compiled (mypyc)" if compiled() else f"pure Python ({PURE_REASON or 'not compiled'})"
