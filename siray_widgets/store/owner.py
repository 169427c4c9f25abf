"""Which process follows a run, and whether that process is still alive.

A run being followed carries its owner, ``host|pid|start``: the host name, the process id and
the process's start time (on Linux, from ``/proc``; elsewhere empty). A run whose owner is gone
(a crashed kernel, a killed script) is marked "interrupted" the next time any process opens the
store. The start time keeps a recycled process id from passing for the old process.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from pathlib import Path


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may contain spaces or ")"; the fields
    # after the last ")" start at field 3, so the start time (field 22) is the 20th of them.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


@functools.cache
def host() -> str:
    return socket.gethostname()


@functools.cache
def _current(pid: int) -> str:
    return f"{host()}|{pid}|{_start_time(pid)}"


def current() -> str:
    """This process's owner string (computed once per process, and again after a fork)."""
    return _current(os.getpid())


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return bool(code.value == 259)  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to someone else
        return True
    except OSError:
        return False
    return True


def alive(owner: str) -> bool | None:
    """Whether the process named by ``owner`` still runs: None when it is on another host."""
    try:
        owner_host, pid_text, started = owner.split("|", 2)
        pid = int(pid_text)
    except ValueError:
        return False  # not written by this code: treat as gone
    if owner_host != host():
        return None
    if not _pid_exists(pid):
        return False
    if started and sys.platform.startswith("linux"):
        return _start_time(pid) == started
    return True
