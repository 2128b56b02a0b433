"""`soke sweep`: wandb sweep parsing, argv identical to a wandb agent's, grid/random expansion, metric reading,
resume, table and plot; every shipped sweep's keys exist in its target config; (slow) a 2-point sweep per file."""

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from soke_lightning.pipelines import sweep as sw

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))

#: A stand-in training program: writes the metric a CSVLogger would, as a function of the swept values.
FAKE_PROGRAM = """
import os, sys, pathlib
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
if args.get("fail") == "True":
    sys.exit(3)
out = pathlib.Path(os.environ["SOKE_OUT"]) / "logs" / "version_0"
out.mkdir(parents=True)
score = float(args["lr"]) * 10 + int(args["width"])
(out / "metrics.csv").write_text("epoch,val/score,train/loss\\n0,%s,1\\n0,,2\\n1,%s,0.5\\n" % (score + 5, score))
with open(os.environ["SOKE_OUT"] + "/../../calls.txt", "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
"""


def _write_sweep(tmp_path, method="grid", extra_params=None, name="sweep", **top):
    program = tmp_path / "fake_train.py"
    program.write_text(FAKE_PROGRAM)
    params = {"lr": {"values": [0.1, 0.5]}, "width": {"values": [1, 2, 3]}, **(extra_params or {})}
    spec = {"method": method, "program": str(program), "metric": {"name": "val/score", "goal": "minimize"},
            "parameters": params, "command": ["${env}", "${interpreter}", "${program}", "${args}"], **top}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_argv_is_what_a_wandb_agent_builds(tmp_path):
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    spec = sw.load_sweep(_write_sweep(tmp_path))
    params = {"model.init_args.lambda_hand": 1 / 3, "flag": True, "sizes": {"body": 64, "lhand": 128},
              "items": [1, 2]}
    theirs = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    argv = sw.build_argv(spec, params, interpreter="python")
    assert argv == ["/usr/bin/env", "python", str(tmp_path / "fake_train.py"), *theirs["args"]]
    assert "--model.init_args.lambda_hand=0.3333333333333333" in argv
    no_bool = sw.build_argv(sw.SweepSpec(**{**spec.__dict__, "command": ["x", "${args_no_boolean_flags}"]}),
                            params)
    assert no_bool[1:] == theirs["args_no_boolean_flags"]
    assert sw.build_argv(sw.SweepSpec(**{**spec.__dict__, "command": ["${args_json}"]}), params) == \
        theirs["args_json"]


def test_grid_and_random_expansion(tmp_path):
    grid = sw.load_sweep(_write_sweep(tmp_path))
    configs = sw.expand(grid)
    assert len(configs) == 6 and configs[0] == {"lr": 0.1, "width": 1} and configs[-1] == {"lr": 0.5, "width": 3}
    assert sw.expand(grid, max_runs=2) == configs[:2]
    rnd = sw.load_sweep(_write_sweep(tmp_path, "random", {"wd": {"distribution": "log_uniform_values",
                                                                  "min": 1e-5, "max": 1e-2},
                                                           "depth": {"min": 1, "max": 4}}, run_cap=20))
    draws = sw.expand(rnd, seed=7)
    assert draws == sw.expand(rnd, seed=7) and draws != sw.expand(rnd, seed=8) and len(draws) == 20
    assert all(1e-5 <= d["wd"] <= 1e-2 and d["depth"] in (1, 2, 3, 4) and d["lr"] in (0.1, 0.5) for d in draws)
    assert all(isinstance(d["depth"], int) for d in draws)


@pytest.mark.parametrize("change, message", [
    ({"method": "bayes"}, "needs the wandb server"),
    ({"metric": {"goal": "minimize"}}, "metric.name"),
    ({"parameters": {"x": {"values": [1, None]}}}, "string 'None'"),
    ({"parameters": {"x": {"min": 0.0, "max": 1.0}}}, "a grid sweep needs `values`"),
    ({"command": ["python", "train.py"]}, "no \\$\\{args\\}"),
])
def test_invalid_sweeps_name_file_and_key(tmp_path, change, message):
    path = _write_sweep(tmp_path)
    spec = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ValueError, match=message) as err:
        sw.load_sweep(path)
    assert str(path) in str(err.value)


def test_random_sweep_without_a_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--max-runs"):
        sw.expand(sw.load_sweep(_write_sweep(tmp_path, "random")))


def test_read_metric_prefers_the_wandb_summary_then_the_last_csv_value(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text("step,val/m,other\n1,3.0,\n2,,1\n3,2.5,\n4,,7\n")
    assert sw.read_metric(tmp_path, "val/m") == 2.5
    assert sw.read_metric(tmp_path, "val/missing") is None
    files = tmp_path / "wandb" / "offline-run-x" / "files"
    files.mkdir(parents=True)
    (files / "wandb-summary.json").write_text(json.dumps({"val/m": 1.25}))
    assert sw.read_metric(tmp_path, "val/m") == 1.25


def test_local_runner_ranks_resumes_and_plots(tmp_path, capsys):
    path = _write_sweep(tmp_path, extra_params={"fail": {"values": [False]}})
    out = tmp_path / "out"
    spec = sw.load_sweep(path)
    first = sw.run_sweep(spec, out, max_runs=4, check=False, progress=False)
    # metric = lr * 10 + width (the last logged value), minimised: (0.1, 1) is best
    assert [r["status"] for r in first] == ["ok"] * 4
    assert [r["metric"] for r in first] == [2.0, 3.0, 4.0, 6.0]
    assert first[0]["params"] == {"lr": 0.1, "width": 1, "fail": False}
    calls = (out / "calls.txt").read_text().splitlines()
    assert calls[0] == "--lr=0.1 --width=1 --fail=False"
    # resume: the 4 done configurations are skipped, the other 2 run
    second = sw.run_sweep(spec, out, check=False, progress=False)
    assert len(second) == 6 and len((out / "calls.txt").read_text().splitlines()) == 6
    table = (out / "results.md").read_text()
    assert table.index("| 1 | 0.1 | 1 |") < table.index("| 6 | 0.5 | 3 |")
    assert (out / "val_score.png").stat().st_size > 1000
    assert len(sw.load_results(out)) == 6
    # a failing configuration is recorded as failed and runs again on resume
    bad = sw.load_sweep(_write_sweep(tmp_path, extra_params={"fail": {"values": [True]}}, name="bad"))
    failed = sw.run_sweep(bad, tmp_path / "bad", max_runs=1, check=False, progress=False)
    assert failed[0]["status"] == "failed" and failed[0]["returncode"] == 3
    # the tool: --extra arguments reach every run, the table is printed
    from soke_lightning.cli import main

    rc = main(["sweep", str(path), "--out", str(tmp_path / "cli"), "--max-runs", "1", "--no-check",
               "--extra=--note=x"])
    assert rc == 0 and "| 1 | 0.1 | 1 |" in capsys.readouterr().out
    assert (tmp_path / "cli" / "calls.txt").read_text().strip().endswith("--fail=False --note=x")


# ------------------------------------------------------------------------------------------------ shipped sweeps
def _debug_command(spec: sw.SweepSpec, store: Path) -> tuple[sw.SweepSpec, list[str]]:
    """The sweep pointed at the debug config of its stage, on a tiny store (what `make sweep-*` smoke runs do)."""
    replace = [f"{c}={c.replace('demo.yaml', 'debug.yaml')}" for c in spec.command if c.endswith("demo.yaml")]
    extra = ["--data", str(ROOT / "datamodules" / "synthsign.yaml"), f"--data.init_args.stores=[{store}]",
             "--data.init_args.batch_size=4", "--data.init_args.val_max_samples=null", "--trainer.max_epochs=1",
             "--trainer.enable_progress_bar=false"]
    return sw.apply_replacements(spec, replace), extra


def _target_exists(spec: sw.SweepSpec) -> bool:
    return all((ROOT / c).exists() for c in spec.command if c.endswith(".yaml"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from test_stage1_stage import make_store

    return make_store(tmp_path_factory.mktemp("sweep_store"), {"train": 2, "val": 1, "test": 1})


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_shipped_sweep_keys_exist_in_the_target_config(path, store, monkeypatch):
    """The debug target parses with the first two swept values (nothing is built) and has every swept key."""
    from soke_lightning.cli.lightning import SokeCLI

    class ParseOnly(SokeCLI):
        def instantiate_classes(self) -> None:  # stage 2 would load a stage-1 checkpoint; keys need no objects
            pass

    spec = sw.load_sweep(path)
    assert spec.method in ("grid", "random") and spec.metric.startswith("val/")
    debug, extra = _debug_command(spec, store)
    if not _target_exists(debug):
        pytest.skip(f"{path.name}: target config {[c for c in debug.command if c.endswith('.yaml')]} not in this "
                    "checkout yet")
    monkeypatch.setenv("SOKE_OUT", str(store.parent / "out"))
    monkeypatch.setattr(sys, "argv", ["soke"])  # LightningCLI warns when it also sees pytest's arguments
    for params in sw.expand(spec, max_runs=2):
        argv = sw.build_argv(debug, params, extra=extra)
        config = ParseOnly(args=argv[argv.index("fit") + 1:], run=False).config.as_dict()
        for key, value in params.items():
            node = config
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{path.name}: {key} is not in the target config"
                node = node[part]
            assert node == value, f"{key}: {node!r} != swept {value!r}"


@pytest.mark.slow  # two short Lightning runs per sweep file, in subprocesses (about 1 min per file on 2 cores)
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_two_point_sweep_of_every_shipped_file_runs_on_debug_configs(path, store, tmp_path, tmp_path_factory):
    spec = sw.load_sweep(path)
    debug, extra = _debug_command(spec, store)
    if not _target_exists(debug):
        pytest.skip(f"{path.name}: target config not in this checkout yet")
    if any("stage2" in c for c in debug.command):
        # stage 2 needs a stage-1 checkpoint and its token cache: the stage-2 tests' session pipeline makes them
        from test_stage2_lm import pipeline

        run = pipeline(tmp_path_factory)
        extra = [x for x in extra if not x.startswith(("--data.init_args.stores", "--data.init_args.batch_size"))]
        extra += [f"--data.init_args.stores=[{run['store']}]", "--data.init_args.batch_size=8",
                  f"--data.init_args.token_cache={run['cache']}", f"--model.init_args.tokenizer_ckpt={run['stage1']}"]
    records = sw.run_sweep(debug, tmp_path / "out", max_runs=2, extra=extra, progress=False)
    assert len(records) == 2, records
    assert all(r["status"] == "ok" and r["metric"] is not None for r in records), \
        [(r["status"], (Path(r["run_dir"]) / "log.txt").read_text()[-2000:]) for r in records]
    assert (tmp_path / "out" / sw.metric_filename(spec.metric)).exists()
    assert shlex.join(records[0]["argv"]).startswith(shlex.join(["/usr/bin/env", sys.executable]))
    table = (tmp_path / "out" / "results.md").read_text()
    assert table.count("| ok |") == 2
