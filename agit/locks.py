"""Folder locks: one process at a time in a run folder, a results folder, a dataset.

A lock is flock() on a lock file, which the kernel drops when its holder ends however it
ends (even kill -9): a lock file whose flock is free was left by a process that is gone
(stale) and is taken over. The file names the holder's pid, host and command, for the
message the next process gets. flock works across hosts on NFS (Linux 2.6.12+).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path


class FolderLocked(RuntimeError):
    """Another process holds the folder's lock."""


_HELD: set[str] = set()  # lock files this process holds: a second `with` on one is a no-op


@contextlib.contextmanager
def folder_lock(lock_file: Path, what: str):
    """Hold `lock_file` exclusively for the block (re-entrant within a process), or raise
    FolderLocked naming the holder; `what` names the folder in messages."""
    key = os.path.realpath(lock_file)
    if key in _HELD:
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "another process"
            os.close(fd)
            raise FolderLocked(f"{what} is in use by {holder}; wait for it to finish, or stop it") from None
        except OSError as err:  # a filesystem without flock (some network mounts)
            os.close(fd)
            warnings.warn(f"cannot lock {lock_file} ({err.strerror}): make sure no other process uses {what}",
                          stacklevel=3)
            yield
            return
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    stale = _holder(fd)
    if stale:
        print(f"{what}: taking over the stale lock of {stale} (no longer running)", file=sys.stderr)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]])[:200]}
    with contextlib.suppress(OSError):  # who holds it is for messages only: a full disk must not stop us
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        lock_file.unlink(missing_ok=True)  # first: whoever opened this file meanwhile sees it is gone (samestat)
        os.close(fd)


def _holder(fd: int) -> str | None:
    """Who the lock file names, in words; None if it names no one (new, or being written)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return None
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} ({info.get('command')})"
