"""Run a wandb-format sweep YAML locally (grid / random), one subprocess per configuration (behind `soke sweep`).

The runner builds each run's argv exactly as a wandb agent does (the ``command:`` list with its macros expanded),
runs each configuration in ``OUT/runs/<id>`` with ``$SOKE_OUT`` pointing there, reads the swept metric from what
its logger wrote (wandb summary, else the last value in a CSVLogger ``metrics.csv``), and keeps one JSON line per
finished run in ``OUT/results.jsonl`` (a re-run skips configurations recorded ``ok``), a table ``OUT/results.md``
and a plot. Swept keys are checked against the target config before the first run.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

METHODS = ("grid", "random")
GOALS = ("minimize", "maximize")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
                 "q_log_uniform_values", "log_uniform", "normal")
ARG_MACROS = ("args", "args_no_hyphens", "args_no_boolean_flags", "args_json", "args_no_equals")
RESULTS_FILE = "results.jsonl"
_ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")


@dataclass
class SweepSpec:
    """A parsed wandb sweep file.

    Attributes:
        source: the YAML file.
        method: "grid" or "random".
        parameters: swept key -> its wandb parameter spec (``value`` / ``values`` / ``distribution`` ...).
        metric: name of the metric to rank by (``metric.name``).
        goal: "minimize" or "maximize".
        command: the ``command:`` list (macros unexpanded).
        program: ``program:`` (for ``${program}``), or None.
        run_cap: ``run_cap:`` (most runs), or None.
    """

    source: Path
    method: str
    parameters: dict[str, dict]
    metric: str
    goal: str
    command: list[str]
    program: str | None = None
    run_cap: int | None = None
    extra: dict = field(default_factory=dict)


def _fail(source, key: str, message: str) -> ValueError:
    return ValueError(f"{source}: `{key}`: {message}")


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Parse and validate a wandb sweep YAML.

    Raises:
        ValueError: naming the file, the key, what was expected and what was found.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"sweep file {source} does not exist (see experiments/sweeps/)")
    raw = yaml.safe_load(source.read_text()) or {}
    method = raw.get("method", "grid")
    if method == "bayes":
        raise _fail(source, "method", "bayes needs the wandb server; run it with `wandb sweep` + `wandb agent`, "
                                      "or use grid/random for the local runner")
    if method not in METHODS:
        raise _fail(source, "method", f"expected one of {list(METHODS)}, got {method!r}")
    metric = raw.get("metric") or {}
    if not isinstance(metric, dict) or not metric.get("name"):
        raise _fail(source, "metric.name", "the metric to rank runs by is missing (e.g. val/mpjpe_pa_hand)")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        raise _fail(source, "metric.goal", f"expected one of {list(GOALS)}, got {goal!r}")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise _fail(source, "parameters", "expected a mapping of swept keys, got nothing")
    for key, spec in params.items():
        if not isinstance(spec, dict):
            raise _fail(source, f"parameters.{key}", f"expected a mapping (value/values/distribution), got {spec!r}")
        if "parameters" in spec:
            raise _fail(source, f"parameters.{key}", "nested parameters are not supported; use dotted keys "
                                                    "(model.init_args.x) instead")
        values = spec.get("values", [spec["value"]] if "value" in spec else None)
        if values is not None and any(v is None for v in values):
            raise _fail(source, f"parameters.{key}", "null value: a wandb agent passes it as the string 'None'; "
                                                    "leave the key out of that configuration instead")
        if method == "grid" and values is None:
            raise _fail(source, f"parameters.{key}", "a grid sweep needs `values` (or `value`), got "
                                                    f"{sorted(spec)}")
        if values is None and _distribution(spec, source, key) not in DISTRIBUTIONS:
            raise _fail(source, f"parameters.{key}.distribution", f"expected one of {list(DISTRIBUTIONS)}, got "
                                                                 f"{spec.get('distribution')!r}")
    command = raw.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]
    if not isinstance(command, list):
        raise _fail(source, "command", f"expected a list of tokens, got {command!r}")
    command = [str(c) for c in command]
    if "${program}" in command and not raw.get("program"):
        raise _fail(source, "program", "the command uses ${program} but no `program:` is given")
    if not any(c[2:-1] in ARG_MACROS for c in command if c.startswith("${")):
        raise _fail(source, "command", "no ${args} (or another argument macro): the swept values would be ignored")
    extra = {k: v for k, v in raw.items() if k not in ("method", "metric", "parameters", "command", "program",
                                                          "run_cap", "name", "description", "project", "entity")}
    if extra:
        log.warning("%s: keys %s are used by the wandb server only; the local runner ignores them",
                    source, sorted(extra))
    run_cap = raw.get("run_cap")
    return SweepSpec(source=source, method=method, parameters=dict(params), metric=str(metric["name"]), goal=goal,
                     command=command, program=raw.get("program"), run_cap=int(run_cap) if run_cap else None,
                     extra=extra)


def _distribution(spec: dict, source, key: str) -> str:
    if "distribution" in spec:
        return spec["distribution"]
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec and "max" in spec:
        both_int = isinstance(spec["min"], int) and isinstance(spec["max"], int)
        return "int_uniform" if both_int else "uniform"
    raise _fail(source, f"parameters.{key}", f"expected value, values, or min/max, got {sorted(spec)}")


def _sample(spec: dict, rng: random.Random, source, key: str) -> Any:
    kind = _distribution(spec, source, key)
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        values = spec["values"]
        return rng.choices(values, weights=spec.get("probabilities"))[0]
    lo, hi = spec.get("min"), spec.get("max")
    if kind == "normal":
        return rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
    if lo is None or hi is None or lo > hi:
        raise _fail(source, f"parameters.{key}", f"{kind} needs min <= max, got min={lo} max={hi}")
    q = spec.get("q", 1)
    if kind == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if kind == "uniform":
        return rng.uniform(lo, hi)
    if kind == "q_uniform":
        return round(rng.uniform(lo, hi) / q) * q
    if kind == "log_uniform":  # wandb: min/max are natural logs
        return math.exp(rng.uniform(lo, hi))
    if lo <= 0:
        raise _fail(source, f"parameters.{key}", f"{kind} needs min > 0, got {lo}")
    value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return value if kind == "log_uniform_values" else round(value / q) * q


def expand(spec: SweepSpec, max_runs: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The configurations of a sweep, in run order (grid: product in file order; random: ``seed``-deterministic).

    Args:
        spec: the sweep.
        max_runs: at most this many (default: the file's ``run_cap``; grid: all).
        seed: random sweeps: the seed of the draws (the same seed gives the same list, which makes resuming work).

    Returns:
        one dict (swept key -> value) per run.
    """
    cap = max_runs if max_runs is not None else spec.run_cap
    keys = list(spec.parameters)
    if spec.method == "grid":
        axes = [spec.parameters[k].get("values", [spec.parameters[k].get("value")]) for k in keys]
        configs = [dict(zip(keys, combo)) for combo in itertools.product(*axes)]
        return configs[:cap] if cap is not None else configs
    if cap is None:
        raise _fail(spec.source, "run_cap", "a random sweep needs a number of runs: set `run_cap:` in the file "
                                           "or pass --max-runs N")
    rng = random.Random(seed)
    return [{k: _sample(spec.parameters[k], rng, spec.source, k) for k in keys} for _ in range(cap)]


def config_id(params: dict[str, Any]) -> str:
    """A short stable id of a configuration (what resuming matches on)."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def build_argv(spec: SweepSpec, params: dict[str, Any], interpreter: str | None = None,
               extra: Sequence[str] = ()) -> list[str]:
    """The argv a wandb agent would run for ``params`` (values formatted with ``str()``), plus ``extra``.

    ``${interpreter}`` becomes ``interpreter`` (default: this Python; the agent uses ``python`` from PATH).
    """
    flags = [f"--{k}={v}" for k, v in params.items()]
    macros: dict[str, list[str]] = {
        "env": ["/usr/bin/env"],
        "interpreter": [interpreter or sys.executable],
        "program": [str(spec.program)] if spec.program else [],
        "args": flags,
        "args_no_hyphens": [f"{k}={v}" for k, v in params.items()],
        "args_no_equals": [x for k, v in params.items() for x in (f"--{k}", str(v))],
        "args_no_boolean_flags": [f"--{k}" if v is True else f"--{k}={v}" for k, v in params.items()
                                  if v is not False],
        "args_json": [json.dumps(params)],
    }
    argv: list[str] = []
    for token in spec.command:
        token = _ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), token)
        if token.startswith("${") and token.endswith("}"):
            name = token[2:-1]
            if name not in macros:
                raise _fail(spec.source, "command", f"unknown macro {token}; known: "
                                                   f"{['${' + k + '}' for k in macros]}")
            argv += macros[name]
        else:
            argv.append(token)
    return argv + list(extra)


def apply_replacements(spec: SweepSpec, replacements: Sequence[str]) -> SweepSpec:
    """A copy of ``spec`` whose command has each ``OLD=NEW`` token replaced (OLD must be a token of it)."""
    command = list(spec.command)
    for item in replacements:
        old, sep, new = item.partition("=")
        if not sep or old not in command:
            raise ValueError(f"--replace {item!r}: expected OLD=NEW with OLD one of the command's tokens {command}")
        command = [new if c == old else c for c in command]
    return SweepSpec(**{**spec.__dict__, "command": command})


# ---------------------------------------------------------------------------------------------- target config check
def _lookup(config: Any, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def missing_keys(spec: SweepSpec, extra: Sequence[str] = (), env: dict | None = None,
                 interpreter: str | None = None) -> list[str]:
    """Swept keys that the target config does not have.

    The command is run without the swept arguments and with ``--print_config`` appended (LightningCLI prints the
    fully resolved config, class defaults included, without training); each swept dotted key must name an entry.

    Raises:
        RuntimeError: the command could not print its config (its stderr tail is included).
    """
    base = build_argv(SweepSpec(**{**spec.__dict__, "parameters": {}}), {}, interpreter, extra)
    proc = subprocess.run([*base, "--print_config"], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec.source}: the target config did not parse (`{' '.join(base)} --print_config` "
                           f"exited {proc.returncode}):\n{proc.stderr[-2000:]}")
    text = proc.stdout
    start = text.find("seed_everything:")  # anything printed before the YAML (library banners) is skipped
    config = yaml.safe_load(text[start if start >= 0 else 0:]) or {}
    return [k for k in spec.parameters if not _lookup(config, k)]


# ---------------------------------------------------------------------------------------------- reading results
def read_metric(run_dir: str | os.PathLike, metric: str) -> float | None:
    """The final value of ``metric`` a run logged below ``run_dir`` (wandb summary first, then CSV), or None."""
    run_dir = Path(run_dir)
    summaries = sorted(run_dir.rglob("wandb-summary.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(summaries):
        try:
            value = json.loads(path.read_text()).get(metric)
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(value, (int, float)):
            return float(value)
    tables = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in reversed(tables):
        with open(path, newline="") as f:
            values = [row[metric] for row in csv.DictReader(f) if row.get(metric) not in (None, "")]
        if values:
            return float(values[-1])
    return None


def load_results(out: str | os.PathLike) -> list[dict]:
    """Records of ``OUT/results.jsonl`` (later records of the same id replace earlier ones)."""
    path = Path(out) / RESULTS_FILE
    if not path.exists():
        return []
    latest: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            latest[record["id"]] = record
    return list(latest.values())


def rank(records: list[dict], goal: str) -> list[dict]:
    """Records best first (by ``metric``); runs without a metric last."""
    sign = 1.0 if goal == "minimize" else -1.0
    return sorted(records, key=lambda r: (r.get("metric") is None or not math.isfinite(r["metric"]),
                                          sign * r["metric"] if r.get("metric") is not None else 0.0))


def _short(key: str) -> str:
    parts = key.split(".")
    return ".".join(p for p in parts[-2:] if p != "init_args") if len(parts) > 1 else key


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(records: list[dict], spec: SweepSpec) -> str:
    """A Markdown table: rank, swept values, metric, status, seconds, run id (best first)."""
    keys = list(spec.parameters)
    head = ["#", *[_short(k) for k in keys], spec.metric, "status", "seconds", "id"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rank(records, spec.goal), 1):
        metric = "" if r.get("metric") is None else f"{r['metric']:.4f}"
        cells = [str(i), *[_fmt(r["params"].get(k, "")) for k in keys], metric, r["status"],
                 f"{r.get('seconds', 0):.0f}", r["id"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(records: list[dict], spec: SweepSpec, path: str | os.PathLike) -> Path | None:
    """Plot the metric per configuration: against the swept value when one numeric key varies, else as bars."""
    done = [r for r in records if r.get("metric") is not None]
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = [k for k in spec.parameters if len({json.dumps(r["params"].get(k), default=str) for r in done}) > 1]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    numeric = (len(varying) == 1 and all(isinstance(r["params"][varying[0]], (int, float))
                                         and not isinstance(r["params"][varying[0]], bool) for r in done))
    if numeric:
        key = varying[0]
        pts = sorted((r["params"][key], r["metric"]) for r in done)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        ax.set_xlabel(_short(key))
    else:
        ordered = rank(done, spec.goal)
        labels = [", ".join(f"{_short(k)}={_fmt(r['params'][k])}" for k in varying) or r["id"] for r in ordered]
        ax.barh(range(len(ordered)), [r["metric"] for r in ordered])
        ax.set_yticks(range(len(ordered)), labels, fontsize=7)
        ax.invert_yaxis()
    ax.set_title(f"{spec.source.stem}: {spec.metric} ({spec.goal})", fontsize=9)
    (ax.set_ylabel if numeric else ax.set_xlabel)(spec.metric)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def metric_filename(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("_") + ".png"


# ---------------------------------------------------------------------------------------------- running
def run_sweep(spec: SweepSpec, out: str | os.PathLike, max_runs: int | None = None, seed: int = 0,
              extra: Sequence[str] = (), check: bool = True, timeout: float | None = None,
              interpreter: str | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) a sweep; returns the records of every configuration of this sweep, best first.

    Writes ``OUT/results.jsonl`` (appended after each run), ``OUT/results.md`` and ``OUT/<metric>.png``.
    """
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = expand(spec, max_runs, seed)
    done = {r["id"]: r for r in load_results(out) if r["status"] == "ok"}
    todo = [p for p in configs if config_id(p) not in done]
    log.info("sweep %s: %d configurations, %d already done, %d to run in %s", spec.source, len(configs),
             len(configs) - len(todo), len(todo), out)
    if todo and check:
        missing = missing_keys(spec, extra, interpreter=interpreter)
        if missing:
            raise ValueError(f"{spec.source}: swept keys {missing} do not exist in the target config of the "
                             f"command; fix the keys (see `soke fit --config ... --print_config`)")
    records = dict(done)
    bar = tqdm(todo, desc=f"sweep {spec.source.stem}", unit="run", disable=not progress, dynamic_ncols=True)
    for params in bar:
        cid = config_id(params)
        run_dir = out / "runs" / cid
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a failed or killed earlier attempt: its partial logs would be misread
        run_dir.mkdir(parents=True)
        argv = build_argv(spec, params, interpreter, extra)
        env = {**os.environ, "SOKE_OUT": str(run_dir.resolve())}
        env.setdefault("WANDB_MODE", "offline")
        bar.set_postfix_str(", ".join(f"{_short(k)}={_fmt(v)}" for k, v in params.items())[:60])
        start = time.monotonic()
        with open(run_dir / "log.txt", "w") as logf:
            logf.write(" ".join(argv) + "\n\n")
            logf.flush()
            try:
                rc = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        metric = read_metric(run_dir, spec.metric) if rc == 0 else None
        status = "ok" if rc == 0 and metric is not None else ("timeout" if rc == -1 else
                                                               "failed" if rc else "no-metric")
        record = {"id": cid, "params": params, "metric": metric, "status": status, "returncode": rc,
                  "seconds": round(time.monotonic() - start, 1), "argv": argv, "run_dir": str(run_dir)}
        if status != "ok":
            log.warning("sweep run %s %s (exit %s); see %s", cid, status, rc, run_dir / "log.txt")
        with open(out / RESULTS_FILE, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        records[cid] = record
    wanted = [records[config_id(p)] for p in configs if config_id(p) in records]
    (out / "results.md").write_text(f"# {spec.source.name}: {spec.metric} ({spec.goal})\n\n"
                                    + results_table(wanted, spec))
    plot_results(wanted, spec, out / metric_filename(spec.metric))
    return rank(wanted, spec.goal)


# ---------------------------------------------------------------------------------------------- the tool
