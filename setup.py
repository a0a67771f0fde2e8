"""Build of the routing core: the modules of `acd.native.COMPILED` are compiled with mypyc into C extensions.

The source stays plain, typed Python and runs as it is; the compiled build runs the same code about twice
as fast (`switchboard bench routing`). It needs a C compiler and the Python headers; without them, or with
SWITCHBOARD_PURE_PYTHON=1 set at install, the package installs as pure Python and says so. `acd.native`
checks at import that the compiled modules were built from the sources beside them and falls back to
the sources if not, so an edit is never shadowed by a stale build.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "acd"))
import native  # acd/native.py alone: importing the acd package would run its import check

sys.path.pop(0)


def _say(message: str) -> None:
    print(f"switchboard build: {message}", file=sys.stderr)


class BuildCore(build_ext):
    """Compile the core, or leave it pure Python (with a warning) when the compiler fails; then record the
    source digests the build was made from, beside the extensions."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as failed:  # noqa: BLE001 - any compiler failure leaves a working pure install
            _say(f"could not compile the routing core ({failed}); it runs as pure Python (about half the speed)")
            self._remove_built()
            return
        target = HERE / "acd" if self.inplace else Path(self.build_lib) / "acd"
        target.mkdir(parents=True, exist_ok=True)
        (target / native.BUILD_RECORD).write_text(json.dumps(native.source_digests(HERE / "acd"), indent=1) + "\n")

    def _remove_built(self) -> None:
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))
            if path.exists():
                path.unlink()


def _extensions() -> list:
    if os.environ.get(native.PURE_ENV):
        _say(f"{native.PURE_ENV} is set: the routing core stays pure Python")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not installed: the routing core stays pure Python")
        return []
    os.chdir(HERE)  # mypyc takes paths relative to the project
    try:
        return mypycify([f"acd/{name}.py" for name in native.COMPILED], opt_level="3", group_name="acd.native")
    except (Exception, SystemExit) as failed:  # noqa: BLE001 - mypyc refuses code it cannot compile by exiting
        _say(f"mypyc could not translate the routing core ({failed}); it stays pure Python")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildCore})
