"""Child processes on loopback for the benchmarks and the tests that run the engine as a process (or
SIPp, or a phone): a free port to give one, and stopping one politely.

Benchmarks here and the tests both use these (tests may import engine code, never the other way).
"""

from __future__ import annotations

import signal
import socket
import subprocess
from typing import Any


def free_port(kind: int = socket.SOCK_DGRAM, both: bool = True) -> int:
    """A loopback port free for `kind`; with `both`, free for TCP too (SIP binds UDP and TCP on one port)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if not both:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def stop(proc: subprocess.Popen[Any], grace_s: float = 20, *, sig: int = signal.SIGTERM,
         kill_wait_s: float = 10) -> int | None:
    """Ask a child to stop (SIGTERM by default: the engine's shutdown runs, its store is closed cleanly);
    SIGKILL it if it has not within `grace_s`. Returns its exit code; a child that has ended is left be."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(kill_wait_s)
    return proc.returncode
