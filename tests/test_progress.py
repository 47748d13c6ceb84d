"""Progress bars: drawn on the terminal a run was started from, never into logs or cluster output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
CODE = (
    "import os, sys; sys.path.insert(0, {src!r}); os.dup2(os.open(os.devnull, os.O_WRONLY), 2)\n"
    "from sagea.runtime import progress_stream\n"
    "s = progress_stream(); print('STREAM', getattr(s, 'name', s))\n"
)


def _in_terminal(mode: str) -> str:
    """Run CODE with a pseudo-terminal as controlling terminal (stderr piped away, as a job's)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: its stdin/stdout/stderr are the terminal; CODE moves stderr away
        env = {**os.environ, "SAGEA_PROGRESS": mode}
        os.execve(sys.executable, [sys.executable, "-c", CODE.format(src=SRC)], env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_bars_go_to_the_controlling_terminal_when_stderr_is_not_one():
    assert "STREAM /dev/tty" in _in_terminal("auto")
    assert "STREAM None" in _in_terminal("0")


def test_no_terminal_no_bars_unless_forced():
    def run(mode: str) -> str:
        env = {**os.environ, "SAGEA_PROGRESS": mode}
        # a new session has no controlling terminal: like a cluster job or CI
        return subprocess.run([sys.executable, "-c", CODE.format(src=SRC)], capture_output=True, text=True,
                              env=env, start_new_session=True, timeout=60).stdout  # fmt: skip

    assert "STREAM None" in run("auto")
    assert "STREAM <stderr>" in run("1")
