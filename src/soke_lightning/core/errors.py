"""The one base class of the errors a user can fix, and the one-line form the `soke` command prints them in.

Every error the package raises for bad input (a damaged store, a missing checkpoint, an unknown language, a
malformed dictionary) derives from :class:`SokeError`. Its message is a single line of the form
``<file or key>: <what is wrong>; <the fix>``; the command line prefixes ``soke <command>: `` and exits with code 2
(`soke --debug` adds the traceback). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json


class SokeError(Exception):
    """Bad input the user can fix; the message names the file, key or value, what is wrong and what to do."""


class RegistryKeyError(SokeError, KeyError):
    """An unknown key of a registry (language, corpus); a KeyError, printed without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingFileError(SokeError, FileNotFoundError):
    """A file the user must provide (a model file, an input list) is not where it was looked for."""


class ConfigError(SokeError, ValueError):
    """A configuration file is missing, is not valid YAML, or does not parse against the classes it names."""


class CheckpointError(SokeError, KeyError):
    """A checkpoint file is missing, unreadable or of another kind; a KeyError, printed without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines included) collapsed to one space.

    >>> one_line("a\\n  b ")
    'a b'
    """
    return " ".join(str(text).split())


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error caused by the user's input, or None for a bug (keep its traceback).

    Besides :class:`SokeError`, an OS error naming a file (missing, a folder where a file was expected, no
    permission) and a JSON/YAML syntax error are the user's.

    >>> user_error_message(FileNotFoundError(2, "No such file or directory", "run/last.ckpt"))
    'run/last.ckpt: no such file or directory; check the path'
    >>> user_error_message(ZeroDivisionError("division by zero")) is None
    True
    """
    if isinstance(exc, SokeError):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.filename is not None and isinstance(
            exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"{exc.filename}: {(exc.strerror or type(exc).__name__).lower()}; check the path"
    if isinstance(exc, json.JSONDecodeError):
        return one_line(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix or re-create the file")
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with every install of the package
        return None
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}: " if mark is not None else ""
        return one_line(f"{where}invalid YAML ({getattr(exc, 'problem', None) or exc}); fix the file")
    return None
