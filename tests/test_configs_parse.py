"""Every shipped YAML parses with the `soke fit` LightningCLI parser; the datamodule YAMLs also instantiate.

Parsing goes through the real SokeCLI parser (omegaconf+ interpolation, class_path checks) but never instantiates
an experiment's model, so a stage-2 config naming a user's local mBART directory parses without it. The
datamodule YAMLs are instantiated against small stores that the environment variables point at.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from soke_lightning.cli.lightning import SokeCLI
from soke_lightning.core.layout import RAW_DIM
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.store import Sample, StoreWriter, open_store

ROOT = Path(__file__).resolve().parents[1]
DATAMODULE_YAMLS = sorted((ROOT / "datamodules").glob("*.yaml"))
EXPERIMENT_YAMLS = sorted((ROOT / "experiments").rglob("*.yaml"))
#: The languages each shipped datamodule serves with the stores written below.
EXPECTED_LANGUAGES = {
    "synthsign": ["asl", "csl", "dgs"],
    "how2sign": ["asl"],
    "csl_daily": ["csl"],
    "phoenix14t": ["dgs"],
    "unified": ["asl", "csl", "dgs"],
}
#: What every parse starts from: `soke fit` requires a model and a datamodule, and many configs are fragments
#: (trainer only, model without data, ...) meant to be combined; later files and flags override these.
BASE_CONFIG = {
    "model": {"class_path": "lightning.pytorch.demos.boring_classes.BoringModel"},
    "data": {"class_path": "soke_lightning.data.datamodule.SignDataModule", "init_args": {"stores": ["unused"]}},
}


class ParseOnlyCLI(SokeCLI):
    """SokeCLI that stops after parsing: nothing is instantiated or run."""

    def instantiate_classes(self) -> None:
        pass

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def _write_store(path: Path, corpus_langs: list[tuple[str, str, float]], rng, stats: bool) -> None:
    writer = StoreWriter(path, {"test": "configs"})
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        with writer.split(split) as out:
            for corpus, lang, fps in corpus_langs:
                for k in range(count):
                    frames = rng.normal(size=(int(rng.integers(20, 300)), RAW_DIM)).astype(np.float32)
                    out.add(Sample(f"{corpus}_{lang}_{split}_{k}", f"text {k}", lang, corpus, frames, fps))
    if stats:
        mean, std, n = compute_stats(s.frames for s in open_store(path).split("train"))
        save_stats(path / STATS_FILE, mean, std, n, "test")


@pytest.fixture(scope="module")
def data_env(tmp_path_factory) -> dict[str, str]:
    """Stores for every shipped datamodule and the environment variables that point at them."""
    root = tmp_path_factory.mktemp("config-data")
    rng = np.random.default_rng(0)
    synth = root / "synthsign"
    _write_store(synth, [("synthsign", "asl", 25.0), ("synthsign", "csl", 25.0), ("synthsign", "dgs", 25.0)],
                 rng, stats=True)
    corpora = {"how2sign": ("asl", 30.0), "csl_daily": ("csl", 30.0), "phoenix14t": ("dgs", 25.0)}
    for corpus, (lang, fps) in corpora.items():
        _write_store(root / "data" / "stores" / corpus, [(corpus, lang, fps)], rng, stats=False)
    stats_dir = root / "official-stats"
    stats_dir.mkdir()
    torch.save(torch.zeros(RAW_DIM), stats_dir / "mean.pt")
    torch.save(torch.ones(RAW_DIM), stats_dir / "std.pt")
    return {"SOKE_SYNTHSIGN": str(synth), "SOKE_DATA_ROOT": str(root / "data"), "SOKE_STATS_DIR": str(stats_dir)}


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> ParseOnlyCLI:
    """One parser for the whole module (building it is the slow part)."""
    base = tmp_path_factory.mktemp("base") / "base.yaml"
    base.write_text(yaml.safe_dump(BASE_CONFIG))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PL_GLOBAL_SEED", "0")  # LightningCLI seeds and exports the seed; keep it out of other tests
        mp.setattr(sys, "argv", ["soke"])  # LightningCLI warns when pytest's own arguments are present
        parsed = ParseOnlyCLI(args=["fit", "--config", str(base)])
    parsed.base_config = str(base)
    return parsed


def _parse(cli: ParseOnlyCLI, *args: str):
    return cli.parser.parse_args(["fit", *args]).fit


def _build_datamodule(data_cfg):
    module, _, name = data_cfg.class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**data_cfg.init_args.as_dict())


def test_the_shipped_datamodules_are_all_there():
    assert {p.stem for p in DATAMODULE_YAMLS} >= set(EXPECTED_LANGUAGES)


@pytest.mark.parametrize("path", DATAMODULE_YAMLS, ids=[p.stem for p in DATAMODULE_YAMLS])
def test_datamodule_yaml_parses_and_instantiates(path, cli, data_env, monkeypatch):
    for key, value in data_env.items():
        monkeypatch.setenv(key, value)
    cfg = _parse(cli, "--config", cli.base_config, "--data", str(path), "--data.num_workers", "0")
    assert cfg.data.class_path == "soke_lightning.data.datamodule.SignDataModule"
    stores = cfg.data.init_args.stores
    assert all(s.startswith((data_env["SOKE_SYNTHSIGN"], data_env["SOKE_DATA_ROOT"])) for s in stores), stores
    dm = _build_datamodule(cfg.data)
    dm.setup("fit")
    assert dm.languages == EXPECTED_LANGUAGES[path.stem]
    batch = next(iter(dm.train_dataloader()))
    assert batch.poses.shape[-1] == 133 and batch.poses.shape[1] % dm.processing.unit_len == 0
    assert set(batch.lang) <= set(dm.languages)


def test_env_defaults_and_missing_roots(cli, monkeypatch):
    monkeypatch.delenv("SOKE_SYNTHSIGN", raising=False)
    monkeypatch.delenv("SOKE_DATA_ROOT", raising=False)
    cfg = _parse(cli, "--config", cli.base_config, "--data", str(ROOT / "datamodules" / "synthsign.yaml"))
    assert cfg.data.init_args.stores == ["data/synthsign-demo"]
    with pytest.raises(Exception, match="SOKE_DATA_ROOT"):
        _parse(cli, "--config", cli.base_config, "--data", str(ROOT / "datamodules" / "unified.yaml"))


def test_command_line_overrides_compose(cli, data_env, monkeypatch):
    for key, value in data_env.items():
        monkeypatch.setenv(key, value)
    cfg = _parse(cli, "--config", cli.base_config, "--data", str(ROOT / "datamodules" / "unified.yaml"),
                 "--data.stores", f"[{data_env['SOKE_SYNTHSIGN']}]", "--data.sampler", "balanced",
                 "--data.languages", "[dgs]")
    assert cfg.data.init_args.stores == [data_env["SOKE_SYNTHSIGN"]]
    assert cfg.data.init_args.sampler == "balanced" and cfg.data.init_args.languages == ["dgs"]
    assert cfg.data.init_args.normalization == data_env["SOKE_STATS_DIR"]


def _is_cli_config(path: Path) -> bool:
    """LightningCLI configs, not wandb sweep definitions (those have `method` + `parameters`)."""
    data = yaml.safe_load(path.read_text()) or {}
    return isinstance(data, dict) and not {"method", "parameters"} <= set(data)


@pytest.mark.parametrize(
    "path", EXPERIMENT_YAMLS, ids=[str(p.relative_to(ROOT / "experiments")) for p in EXPERIMENT_YAMLS]
)
def test_experiment_yaml_parses(path, cli, data_env, monkeypatch):
    if not _is_cli_config(path):
        pytest.skip(f"{path.name} is a sweep definition, not a LightningCLI config")
    for key, value in data_env.items():
        monkeypatch.setenv(key, value)
    cfg = _parse(cli, "--config", cli.base_config, "--config", str(path))
    # Every value the file sets literally reaches the parsed config (a typo'd or dropped key would not).
    data = yaml.safe_load(path.read_text()) or {}
    assert data, f"{path} is empty"
    for key, value in _literal_values(data):
        got = _lookup(cfg, key)
        assert got == value, f"{path}: {key} parsed as {got!r}, the file says {value!r}"


def _lookup(cfg, key):
    """``cfg[key]`` for a dotted key, descending into plain dicts (dict-typed arguments) as well as namespaces."""
    node = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def _literal_values(node, prefix=""):
    """(dotted key, value) of every scalar a YAML mapping sets literally (no ${...} interpolation, lists skipped)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _literal_values(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, (bool, int, float)) or (isinstance(node, str) and "${" not in node):
        yield prefix, node
