"""Running a command on a pseudo-terminal, as a person at a terminal would: its stdout (and, by default, its
stderr) is a tty `COLUMNS` wide, so the `syncd` command draws with rich there; what it wrote is returned
with the terminal's line ends made plain, and `plain` strips the colours and cursor moves.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

COLUMNS = 160
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class OnTerminal:
    code: int
    output: str
    """What the command wrote to the terminal, raw (colours and cursor moves kept; CRLF made LF)."""
    stderr: str
    """Its stderr when that was a pipe; empty when it went to the terminal too."""

    @property
    def text(self) -> str:
        return plain(self.output)


def plain(output: str) -> str:
    """`output` without colours and cursor moves; a line redrawn after a carriage return counts as a line."""
    return "\n".join(line.rstrip() for line in ANSI.sub("", output).replace("\r", "\n").split("\n"))


def run_on_terminal(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    stderr_too: bool = True,
    timeout_s: float = 90,
) -> OnTerminal:
    """Run `argv` with its stdout (and stderr, with `stderr_too`) on a new pseudo-terminal."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    environment = {k: v for k, v in env.items() if k not in {"NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"}}
    environment |= {"TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": "50"}
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary if stderr_too else subprocess.PIPE,
        env=environment,
        cwd=cwd,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                process.kill()
                raise TimeoutError(f"{argv} still running after {timeout_s} s")
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(primary)
    stderr = process.stderr.read().decode() if process.stderr is not None else ""
    if process.stderr is not None:
        process.stderr.close()
    code = process.wait(timeout=timeout_s)
    output = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return OnTerminal(code, output, stderr)
