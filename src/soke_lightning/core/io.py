"""File helpers every layer shares: atomic writes (temporary file + rename) and safe file-name stems.

A reader never sees a half-written file: each writer goes to a uniquely named temporary file in the destination
folder and renames it over the target (``os.replace`` is atomic on POSIX and Windows). Temporary names come from
``tempfile.mkstemp``, so two processes writing the same target never share one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Longest file-name stem :func:`safe_stem` returns before its hash suffix.
MAX_STEM = 120


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
        # mkstemp creates the file 0600; give it the permissions a plain open() would (0666 minus the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
