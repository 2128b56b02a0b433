"""File helpers every layer shares: durable atomic writes, checkpoint reading with clear errors, file-name stems.

A reader never sees a half-written file: each writer goes to a uniquely named temporary file in the destination
folder and renames it over the target (``os.replace`` is atomic on POSIX and Windows). Temporary names come from
``tempfile.mkstemp``, so two processes writing the same target never share one. The file is flushed to disk
(``fsync``) before the rename and the folder after it, so a power loss leaves the old or the new content, never an
empty file (a rename alone is atomic but not durable).

:func:`fault_point` is the fault-injection hook of the writers: with ``SOKE_FAULT_POINT=<name>`` in the
environment the process dies at once (``os._exit``, no clean-up, like a kill) when it reaches that point; the
crash-recovery tests use it to stop a writer between any two steps of a commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

try:  # POSIX; elsewhere writers are not locked against each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from soke_lightning.core.errors import CheckpointError, ConfigError, SokeError

#: Longest file-name stem :func:`safe_stem` returns before its hash suffix.
MAX_STEM = 120
#: Environment variable naming the :func:`fault_point` at which the process is killed (tests only).
FAULT_ENV = "SOKE_FAULT_POINT"
#: Exit status of a process killed by :func:`fault_point`.
FAULT_EXIT_CODE = 86


def fault_point(name: str) -> None:
    """Die here, without any clean-up, when ``$SOKE_FAULT_POINT`` equals ``name`` (crash-recovery tests)."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(FAULT_EXIT_CODE)


class LockedError(SokeError):
    """Another process holds the lock of a file or folder this process wants to write."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, timeout: float, busy: str) -> Iterator[None]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on ``path`` (created if needed) for the block.

    The lock belongs to this open file, so two writers in one process exclude each other as two processes do, and
    the system releases it when the process dies (a killed writer never leaves a stale lock). The holder's pid is
    written into the file for the message a waiting writer gives.

    Args:
        path: the lock file.
        timeout: seconds to wait for another holder to let go (0: give up at once).
        busy: the message when the wait times out, with ``{pid}`` for the holder's pid and ``{timeout}``.

    Raises:
        LockedError: another holder kept the lock for ``timeout`` seconds.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    raise LockedError(busy.format(pid=holder, timeout=f"{timeout:g}")) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    Args:
        path: the file to (re)write; its folder is created.
        write: writes the whole content to the binary file handle it is given.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would (0666 minus the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | os.PathLike, data: Any, *, compact: bool = False) -> Path:
    """Write ``data`` as JSON (UTF-8, non-ASCII kept) atomically; indented with sorted keys unless ``compact``."""
    if compact:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    return atomic_write_text(path, text + "\n")


def read_yaml(path: str | os.PathLike, what: str = "config file") -> Any:
    """Parse a YAML file; a missing file or a syntax error raises one clear error naming the file and line.

    Raises:
        ConfigError: ``<path>: <problem>; <fix>`` (``<path>:<line>:<column>`` for a syntax error).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} does not exist; check the path (configs live in experiments/ and "
                          f"datamodules/)")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML ({' '.join(str(problem).split())}); fix the file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason}); fix the file") from None


def load_checkpoint(path: str | os.PathLike, what: str, fix: str, map_location: Any = "cpu",
                    weights_only: bool = False) -> dict:
    """``torch.load`` a checkpoint dict; a missing, unreadable or non-dict file raises one clear error.

    Args:
        path: the checkpoint file.
        what: what it should be, for the message ("stage-2 checkpoint").
        fix: how to get a valid one, for the message.
        map_location, weights_only: as for ``torch.load``.

    Raises:
        CheckpointError: ``<path>: <problem>; <fix>``.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{path}: {what} {problem}; {fix}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # truncated zip, not a torch file, unpickling error: all mean a damaged file
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:160]}); {fix}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a {what} (holds a {type(ckpt).__name__}); {fix}")
    return ckpt


def safe_stem(name: str) -> str:
    """A file-name stem for a sample name: characters other than letters, digits, '.', '_' and '-' become '_'.

    When the name had to change (or is empty, hidden or too long), the first 8 hex digits of its SHA-1 are
    appended, so different names never map to the same stem ("a/b" -> "a_b-<hash>", while "a_b" stays "a_b").

    >>> safe_stem("fold/01April_2010")
    'fold_01April_2010-3b73f3df'
    >>> safe_stem("plain_name")
    'plain_name'
    """
    stem = re.sub(r"[^\w.\-]", "_", name).lstrip(".")[:MAX_STEM]
    if stem != name or not stem:
        stem = f"{stem or 'sample'}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"
    return stem
