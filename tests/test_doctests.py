"""The runnable examples in the metric (and core) docstrings hold: each module's doctests run and pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import soke_lightning.core
import soke_lightning.metrics

MODULES = sorted(info.name for package in (soke_lightning.metrics, soke_lightning.core)
                 for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."))
#: Modules whose public functions or Metric classes must show at least one runnable example.
MUST_HAVE_EXAMPLES = {
    "soke_lightning.metrics.bleu", "soke_lightning.metrics.dtw", "soke_lightning.metrics.reconstruction",
    "soke_lightning.metrics.functional.alignment", "soke_lightning.metrics.functional.bleu",
    "soke_lightning.metrics.functional.dtw", "soke_lightning.metrics.functional.parts", "soke_lightning.core.io",
    "soke_lightning.metrics.slrtp", "soke_lightning.metrics.functional.slrtp",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} has no runnable example in its docstrings"
