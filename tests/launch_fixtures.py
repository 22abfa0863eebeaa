"""Running ``mlx.launch`` from tests: free ports for the ring, the launcher, a run that cannot hang."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCH_TIMEOUT = 180  # seconds; a healthy launch takes well under 30 on 2 cores


def free_port_pair() -> int:
    """A port p such that p and p + 1 are free now (the ring listens on one port per rank)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    pytest.skip("no two consecutive free ports on 127.0.0.1")


def launcher() -> str:
    exe = shutil.which("mlx.launch") or str(Path(sys.executable).with_name("mlx.launch"))
    if not os.path.exists(exe):  # installed with mlx, a hard dependency: its absence is a broken install
        pytest.fail("mlx.launch is not installed (it comes with the mlx package: pip install mlx)")
    return exe


def run_launch(args, timeout=LAUNCH_TIMEOUT, env=None):
    """Run ``mlx.launch ARGS`` in its own process group; kill the whole group if it overruns."""
    proc = subprocess.Popen(
        [launcher(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mlx.launch did not finish within {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def ring_args(n: int = 2) -> list:
    """``mlx.launch`` options for ``n`` ranks over loopback on free ports."""
    return ["--backend", "ring", "-n", str(n), "--starting-port", str(free_port_pair())]
