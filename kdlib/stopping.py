"""Stopping long work cleanly: Ctrl-C or SIGTERM ends every process a command started, and
one process at a time trains a run.

    with on_signal():              # in kdlib.series and kdlib.gpujob
        ...                        # Ctrl-C / SIGTERM: the children stop, then `Stopped` is raised
    with exclusive(path, what):    # one writer of a run folder or an epoch state
        ...

Why by hand: papermill starts each notebook's kernel in a session of its own (jupyter_client
does, so that it can interrupt the kernel's whole group), so a terminal's Ctrl-C never reaches
the kernel, and a kernel left behind went on training (measured: a teacher from epoch 2 to 4
and beyond after its series had gone). Here the command that started the kernels stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # native Windows: the clear answer at `import kdlib`, not a bare "No module named 'fcntl'"
    raise ImportError("kdlib needs Linux or macOS: it locks a run folder with flock and stops a series' notebook "
                      "kernels by process group. On Windows, run it in WSL (wsl --install) or open the notebooks "
                      "in Colab (README, Quick start).") from None

GRACE_S = 5.0  # how long a child has to end after SIGTERM before SIGKILL


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when Ctrl-C or SIGTERM arrives, after the children have stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Busy(RuntimeError):
    """Another live process holds what this one was to write."""


def children(pid: int | None = None) -> list[int]:
    """Every process descended from `pid` (default: this one), from /proc (Linux; elsewhere none)."""
    pid = os.getpid() if pid is None else pid
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_children() -> list[int]:
    """SIGTERM to every descendant and its process group (never this process's own group), then
    SIGKILL to any still alive after GRACE_S. Returns the processes that were stopped."""
    started = children()
    own_group = os.getpgrp()
    for pid in started:
        # A child in this process's own group (a pipe's neighbour, a helper process) is signalled
        # alone: the group also holds this process and the shell or script that started it.
        with suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGTERM)
        with suppress(ProcessLookupError, PermissionError):  # the child itself, even where its group refused
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.1)
    for pid in started:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return started


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own children, so that they do not linger as zombies
    except ChildProcessError:
        pass
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextmanager
def on_signal():
    """Within the block, SIGINT (Ctrl-C: the terminal sends it to the whole foreground group)
    and SIGTERM stop every process this one started, then raise `Stopped` here. A second
    signal while stopping is ignored."""
    stopping = []

    def handler(signum, frame):
        if stopping:
            return
        stopping.append(signum)
        # The children are ended on purpose: what their libraries log next (papermill's or asyncio's
        # "Kernel died" with a traceback, seen under load) is noise beside the stop's own message.
        logging.disable(logging.CRITICAL)
        stop_children()
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def exclusive(path: Path, what: str):
    """Hold `path` (a lock file) for the block; another live process holding it makes this
    raise `Busy`, naming the process. The lock is the kernel's (flock): it ends with the
    process however the process ends, so a killed run never leaves a stale lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Busy(f"{what} is in use by {holder}, which is still running. Two processes must not write one "
                   f"run: wait for it to end, or stop it (kill {holder.split()[1] if holder.startswith('process ') else 'it'}), "
                   "then run again (with --resume to continue).") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} (started {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
