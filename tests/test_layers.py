"""The package keeps its layers (docs/design.md §1): imports run downward only, commands live in cli/, no private
imports across modules, every class in the package of its role; and the checker itself catches a planted breach."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule
from torchmetrics import Metric

import soke_lightning
from import_layers import check_tree, private_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: nn.Modules allowed outside models/: buffer-only modules that lower layers need (docs/design.md §1, rule 4).
MODULES_OUTSIDE_MODELS = {"soke_lightning.data.normalization.Normalizer"}


def test_the_package_keeps_its_layers():
    assert check_tree(SRC) == []


def test_tests_scripts_and_benchmarks_import_no_private_name():
    paths = [p for folder in ("tests", "scripts", "bench") for p in (ROOT / folder).rglob("*.py")]
    assert private_imports(paths) == []


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("core/layout.py", "from soke_lightning.cli import main", "core/ imports soke_lightning.cli, a higher layer"),
    ("models/vqvae.py", "from soke_lightning.training.common import warmup_cosine",
     "models/ imports soke_lightning.training.common, a higher layer"),
    ("metrics/dtw.py", "def _late():\n    from soke_lightning.core.io import safe_stem\n", "inside a function"),
    ("data/store.py", "import argparse", "imports argparse"),
    ("render/animation.py", "from soke_lightning.core.io import _private_helper", "imports private"),
    ("retrieval/matcher.py", "import soke_lightning.render.exports", "import cycle"),
])
def test_the_checker_catches_a_planted_breach(tmp_path, module, line, expected):
    shutil.copytree(SRC / "soke_lightning", tmp_path / "soke_lightning",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if expected == "import cycle":  # retrieval and render share a layer: a two-way import is only a cycle
        (tmp_path / "soke_lightning" / "render" / "exports.py").write_text(
            (SRC / "soke_lightning" / "render" / "exports.py").read_text() + "\nimport soke_lightning.retrieval.matcher\n")
    target = tmp_path / "soke_lightning" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    problems = check_tree(tmp_path)
    assert len(problems) == 1, problems
    assert expected in problems[0]
    if expected != "import cycle":
        assert problems[0].startswith(f"soke_lightning/{module}:")


def _classes():
    for info in pkgutil.walk_packages(soke_lightning.__path__, "soke_lightning."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name:
                yield info.name, f"{info.name}.{name}", cls


def test_every_class_lives_in_the_package_of_its_role():
    misplaced = []
    for module, qualname, cls in _classes():
        package = module.split(".")[1]
        if issubclass(cls, Metric) and package != "metrics":
            misplaced.append(f"{qualname}: a Metric outside metrics/")
        elif issubclass(cls, LightningModule) and package != "training":
            misplaced.append(f"{qualname}: a LightningModule outside training/")
        elif (issubclass(cls, torch.nn.Module) and not issubclass(cls, (Metric, LightningModule))
              and package not in ("models", "kinematics") and qualname not in MODULES_OUTSIDE_MODELS):
            misplaced.append(f"{qualname}: an nn.Module outside models/")
        if package == "training" and not (issubclass(cls, (LightningModule, Exception))
                                          or any(issubclass(sub, cls) for _, _, sub in _training_modules())):
            misplaced.append(f"{qualname}: training/ holds LightningModules (their mixins, their errors) only")
    assert misplaced == []


def _training_modules():
    for module, qualname, cls in _classes():
        if module.startswith("soke_lightning.training") and issubclass(cls, LightningModule):
            yield module, qualname, cls


def test_no_argparse_outside_cli_and_no_stages_folder():
    src = SRC / "soke_lightning"
    assert not (src / "stages").exists()
    users = [p.relative_to(src) for p in src.rglob("*.py") if re.search(r"\bargparse\b", p.read_text(encoding="utf-8"))]
    assert all(p.parts[0] == "cli" for p in users), users


def test_the_repository_points_to_no_document_outside_it():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # spelt in pieces so that this file does not name them itself
    outside = ("SOKE_" + "SPEC", "../" + "shared", "OFFICIAL_" + "FORMATS", "ENVIRONMENT_" + "NOTES",
               "SYNTHSIGN" + ".md", "STYLE" + ".md")
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".yaml", ".sh", ".sbatch", ".cfg", ".toml") or path.name == "Makefile":
            text = path.read_text(encoding="utf-8", errors="replace")
            hits += [f"{name}: {word}" for word in outside if word in text]
    assert hits == []
