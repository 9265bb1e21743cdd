"""One writer per run directory: an advisory lock file that names its holder.

``DIR/.galu.lock`` is locked with ``flock`` while a run writes into ``DIR``; its content says
who holds it (pid, host, start time, command). A second process that wants the directory is
refused at once with that holder in the message. The kernel drops the lock when its holder dies
(``kill -9``, out of memory, a reboot), so a lock file left by a dead run is *stale*: the next run
takes it over and says so. Where ``flock`` is not available (some network file systems) the pid
recorded in the file decides instead: alive on this host → held; dead → stale; another host →
held, with a message telling how to clear it by hand.

Workers of the process and Ray backends never write into the directory; only the process that
holds the lock does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from galu.runner.rundir import RunDirError, write_error

LOCK_NAME = ".galu.lock"


class RunDirLocked(RunDirError):
    """The run directory is in use by another live process."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def describe_holder(holder: dict[str, Any]) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
        f"{holder.get('started', '?')}"
        + (f" ({holder['command']})" if holder.get("command") else "")
    )


class RunLock:
    """The lock of one run directory; use as a context manager or call acquire/release."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None  # the stale holder replaced, if any

    def _read(self, fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        try:
            data = json.loads(raw.decode() or "{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _refuse(self, holder: dict[str, Any], *, by_hand: bool = False) -> RunDirLocked:
        hint = (
            f" If that process is gone, delete {self.path} and re-run."
            if by_hand
            else " Wait for it to finish (re-running then resumes), or choose another --out."
        )
        return RunDirLocked(
            f"--out {self.directory} is in use by another galu run: {describe_holder(holder)}."
            + hint
        )

    def acquire(self) -> RunLock:
        import fcntl

        while True:
            with write_error(self.path):
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                flocked = True
            except BlockingIOError:
                holder = self._read(fd)
                os.close(fd)
                raise self._refuse(holder) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                flocked = False
            # A holder that released (and unlinked) the file between our open and flock left us
            # locking a file nobody else sees: start again on the file now at the path.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = self._read(fd)
        if old.get("pid") is not None:
            here = old.get("host") == socket.gethostname()
            if not flocked and (not here or _pid_alive(int(old["pid"]))):
                os.close(fd)
                raise self._refuse(old, by_hand=not here)
            self.took_over = old
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(
                os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)
            ),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
