"""Collect what a run left into ``RUN_DIR/report_inputs.json`` and write its HTML report (behind `soke report`).

Each piece only when present: the test metrics of ``RUN_DIR/logs/test/metrics.csv``; codebook usage from the
checkpoint (stage 1 directly, stage 2 through the stage-1 checkpoint it names); baselines and back-translation
JSON files; per-sample DTW errors of the model (stage-1 reconstruction or a prediction folder) and of the mean pose
on a store split, with their per language x part means; the SLRTP protocol table (the model's row from the test
metrics or its per-sample motion, the ground truth / mean pose / dictionary rows from the baselines or
back-translation JSON); the best / median / worst samples as GIFs into ``RUN_DIR/report/``.
:func:`write_run_report` collects (unless told to reuse the inputs file) and renders.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soke_lightning.core.io import atomic_write_text
from soke_lightning.core.layout import features_to_raw, raw_to_features
from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import open_store
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.parts import parts_from_joint_sets, score_parts
from soke_lightning.metrics.slrtp import SLRTP_SCORES
from soke_lightning.models.tokenizer import SignTokenizer
from soke_lightning.pipelines.backtranslate import read_predictions
from soke_lightning.pipelines.baselines import SLRTP_SYSTEMS, mean_pose_predictions, slrtp_score
from soke_lightning.render.animation import render_animation
from soke_lightning.report.html import INPUTS_FILE, INPUTS_FORMAT, write_report

log = logging.getLogger(__name__)

#: The DTW variants of the per-sample errors (see :data:`soke_lightning.metrics.functional.dtw.VARIANTS`).
DTW_METRICS = ("dtw_jpe", "dtw_pa_jpe")


def read_metrics_csv(path: Path) -> dict[str, float]:
    """Last non-empty value of every column but epoch/step of a CSVLogger metrics file."""
    values: dict[str, float] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k not in ("epoch", "step") and v not in ("", None):
                    values[k] = float(v)
    return values


def codebook_counts(ckpt: dict, path: Path) -> dict[str, list[float]] | None:
    """{part: EMA counts} from a stage-1 checkpoint, or through the stage-1 path a stage-2 checkpoint names."""
    import torch

    if "soke_tokenizer" not in ckpt and "soke_lm" in ckpt:
        stage1 = Path(ckpt["soke_lm"]["tokenizer_ckpt"])
        if not stage1.is_file():
            log.warning("%s names stage-1 checkpoint %s, which does not exist: no codebook histograms", path, stage1)
            return None
        ckpt = torch.load(stage1, map_location="cpu", weights_only=False)
    counts = {k.split(".")[-3]: v.double().tolist() for k, v in ckpt.get("state_dict", {}).items()
              if k.endswith("quantizer.ema_count")}
    return counts or None


def slrtp_from_metrics(values: dict[str, float]) -> dict[str, dict[str, float]]:
    """{lang: {score: value}} of the SLRTP keys a stage-2 test logged (``test/slrtp_dtw_mje/asl``, ...)."""
    out: dict = defaultdict(dict)
    for key, value in values.items():
        tokens = key.split("/")
        if len(tokens) == 3 and tokens[0] == "test" and tokens[1] in SLRTP_SCORES:
            out[tokens[2]][tokens[1]] = float(value)
    return {lang: scores for lang, scores in out.items() if set(scores) == set(SLRTP_SCORES)}


def per_sample_dtw(preds: list[np.ndarray], gts: list[np.ndarray], batch_size: int = 16) -> dict[str, dict[str, np.ndarray]]:
    """{part: {metric: [N] accumulated DTW cost (m)}} of official-frame sequences against the ground truth."""
    from tqdm import tqdm

    backend = get_joint_backend("builtin")
    parts = parts_from_joint_sets(backend.joint_sets)
    out = {p.name: {m: [] for m in DTW_METRICS} for p in parts}
    for start in tqdm(range(0, len(preds), batch_size), desc="DTW", unit="batch"):
        jp, lp = backend.padded_joints(preds[start:start + batch_size])
        jg, lg = backend.padded_joints(gts[start:start + batch_size])
        scores = score_parts(jp, jg, lp, lg, parts, DTW_METRICS)  # [B, metric, part]
        for p, part in enumerate(parts):
            for m, metric in enumerate(DTW_METRICS):
                out[part.name][metric].append(scores[:, m, p].numpy())
    return {p: {m: np.concatenate(v) for m, v in ms.items()} for p, ms in out.items()}


def per_language_means(costs: dict, langs: list[str]) -> dict:
    """{lang: {part: {metric: mean}}} (the shape of ``soke baselines --json``)."""
    out: dict = defaultdict(dict)
    langs_arr = np.asarray(langs)
    for lang in sorted(set(langs)):
        sel = langs_arr == lang
        for part, metrics in costs.items():
            out[lang][part] = {m: float(v[sel].mean()) for m, v in metrics.items()}
    return dict(out)


def reconstruct(ckpt_path: Path, gts: list[np.ndarray]) -> list[np.ndarray]:
    """Stage-1 round trip (encode -> decode) of official frames; returns official frames."""
    import torch

    tok = SignTokenizer.from_checkpoint(ckpt_path).eval()
    out = []
    with torch.no_grad():
        for raw in gts:
            feats = tok.normalizer.normalize(torch.from_numpy(raw_to_features(raw)))[None]
            recon = tok(feats, torch.tensor([len(raw)])).recon
            out.append(features_to_raw(tok.normalizer.denormalize(recon[0]).numpy()))
    return out


def render_samples(records: list[dict], errors: np.ndarray, out_dir: Path, base: Path, model_title: str) -> list[dict]:
    """GIFs (model | ground truth) of the best, median and worst samples; entries for the inputs file."""
    import torch

    backend = get_joint_backend("builtin")
    order = np.argsort(errors)
    picks = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
    out = []
    for label, i in picks.items():
        r = records[int(i)]
        with torch.no_grad():
            seqs = [backend(torch.from_numpy(np.asarray(r[k], np.float32))).numpy() for k in ("pred", "gt")]
        gif = render_animation(seqs, backend.bones, out_dir / f"{label}.gif", titles=[model_title, "ground truth"],
                               caption=r["text"], fps=r.get("fps", 25.0), joint_sets=backend.joint_sets, height=240)
        out.append({"label": label, "name": r["name"], "corpus": r.get("corpus"), "lang": r["lang"], "text": r["text"],
                    "error": float(errors[int(i)]), "gif": str(gif.relative_to(base))})
    return out


@dataclass
class ReportOptions:
    """What a report collects.

    Attributes:
        run_dir: the run's output folder.
        ckpt: checkpoint (default ``run_dir/checkpoints/best.ckpt``).
        store: store of the ground truth (default: the one the checkpoint was trained on, when it names one).
        split: the store split scored.
        predictions: PredictionWriter folder of generated motion (default ``run_dir/predictions``).
        baselines: ``soke baselines --json`` output.
        backtranslation: ``soke backtranslate --json`` output.
        max_samples: score only the first N samples of the split.
        title: the page title.
    """

    run_dir: str | Path
    ckpt: str | Path | None = None
    store: str | Path | None = None
    split: str = "test"
    predictions: str | Path | None = None
    baselines: str | Path | None = None
    backtranslation: str | Path | None = None
    max_samples: int | None = None
    title: str | None = None


def write_run_report(opts: ReportOptions, out: str | Path | None = None, reuse_inputs: bool = False) -> Path:
    """Collect ``opts.run_dir`` into its inputs file (unless ``reuse_inputs`` and it exists) and render the HTML.

    Returns:
        The HTML file (``out``, default ``run_dir/report.html``).
    """
    run_dir = Path(opts.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder (give a run's output folder, e.g. outputs/stage1-demo)")
    inputs_file = run_dir / INPUTS_FILE
    if not (reuse_inputs and inputs_file.is_file()):
        atomic_write_text(inputs_file, json.dumps(collect(opts), indent=1, ensure_ascii=False) + "\n")
    return write_report(inputs_file, out)


def collect(args: ReportOptions) -> dict:
    """Build the :data:`INPUTS_FILE` contents from what ``args.run_dir`` holds and the given files."""
    import torch

    run_dir = Path(args.run_dir)
    inputs: dict = {"format": INPUTS_FORMAT, "title": args.title or f"Evaluation report: {run_dir.name}",
                    "run_dir": str(run_dir)}
    csv_path = run_dir / "logs" / "test" / "metrics.csv"
    if csv_path.is_file():
        inputs["metrics"] = {"source": str(csv_path), "values": read_metrics_csv(csv_path)}
    else:
        log.warning("%s not found: no test metrics in the report (run `soke test ... --trainer.logger.init_args."
                    "version test`)", csv_path)
    comparison: dict = {}
    slrtp: dict = {}
    model_slrtp = slrtp_from_metrics(inputs["metrics"]["values"]) if "metrics" in inputs else {}
    if model_slrtp:
        slrtp["model"] = model_slrtp
    if args.baselines:
        baselines = json.loads(Path(args.baselines).read_text(encoding="utf-8"))
        comparison.update({k: baselines[k] for k in ("mean_pose", "dictionary") if k in baselines})
        slrtp.update({k: v for k, v in (baselines.get("slrtp") or {}).items() if k in SLRTP_SYSTEMS})
    bt_samples: dict[str, str] = {}
    if args.backtranslation:
        bt = json.loads(Path(args.backtranslation).read_text(encoding="utf-8"))
        inputs["backtranslation"] = bt["sources"]
        for source, scores in (bt.get("slrtp") or {}).items():  # rows the baselines file did not give
            slrtp.setdefault("model" if source in ("generated", "predictions") else source, scores)
        for source in ("generated", "predictions"):  # the model's back-translated sentences, shown under its GIFs
            for s in (bt.get("samples") or {}).get(source, []):
                bt_samples.setdefault(s["name"], s["hypothesis"])
    ckpt_path = Path(args.ckpt) if args.ckpt else run_dir / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.is_file() else None
    if ckpt is None:
        log.warning("no checkpoint at %s: no codebook histograms, no reconstruction samples", ckpt_path)
    else:
        inputs["codebooks"] = codebook_counts(ckpt, ckpt_path)
    store = args.store
    if store is None and ckpt is not None:
        stores = (ckpt.get("datamodule_hyper_parameters") or {}).get("stores") or []
        store = stores[0] if len(stores) == 1 else None
    predictions = Path(args.predictions) if args.predictions else run_dir / "predictions"
    is_stage1 = ckpt is not None and "soke_tokenizer" in ckpt and "soke_lm" not in ckpt
    if store is not None and (is_stage1 or predictions.is_dir()):
        comparison_model, errors, samples, model_motion = sample_errors(args, Path(store), ckpt_path, predictions,
                                                                        is_stage1, run_dir)
        comparison = {"model": comparison_model, **comparison}
        if not model_slrtp:  # the scored samples' motion when the test metrics do not have it
            slrtp["model"] = model_motion
        for s in samples:
            hypothesis = bt_samples.get(s["name"], bt_samples.get(f"{s.get('corpus')}/{s['name']}"))
            if hypothesis is not None:
                s["hypothesis"] = hypothesis
        inputs["errors"], inputs["samples"] = errors, samples
    if comparison:
        inputs["comparison"] = comparison
    if slrtp:
        order = ["model", *SLRTP_SYSTEMS]
        inputs["slrtp"] = {k: slrtp[k] for k in sorted(slrtp, key=lambda k: order.index(k) if k in order else 99)}
    return inputs


def sample_errors(args, store_path: Path, ckpt_path: Path, predictions: Path, is_stage1: bool, run_dir: Path):
    store = open_store(store_path)
    sp = store.split(args.split)
    records = []
    for i in range(len(sp) if args.max_samples is None else min(len(sp), args.max_samples)):
        s = sp[i]
        records.append({"name": s.name, "corpus": s.corpus, "text": s.text, "lang": s.lang, "fps": float(s.fps),
                        "gt": s.frames[length_indices(s.num_frames)].astype(np.float32)})
    if is_stage1:
        title = "reconstruction"
        for r, pred in zip(records, reconstruct(ckpt_path, [r["gt"] for r in records])):
            r["pred"] = pred
    else:
        title = "generated"
        by_name = {p["name"]: p["raw"] for p in read_predictions(predictions)}
        for r in records:
            r["pred"] = by_name.get(f"{r['corpus']}/{r['name']}", by_name.get(r["name"]))
        missing = [r["name"] for r in records if r["pred"] is None]
        if missing:
            log.warning("%d of %d %s samples have no prediction in %s (e.g. %s): left out", len(missing), len(records),
                        args.split, predictions, missing[:3])
        records = [r for r in records if r["pred"] is not None]
    if not records:
        raise ValueError(f"no {args.split} sample of {store_path} has a prediction in {predictions}")
    langs = [r["lang"] for r in records]
    model_costs = per_sample_dtw([r["pred"] for r in records], [r["gt"] for r in records])
    mean = mean_pose_predictions(store, args.split)
    mean_costs = per_sample_dtw([mean[r["name"]] for r in records], [r["gt"] for r in records])
    model_err = np.mean([model_costs[p]["dtw_pa_jpe"] for p in model_costs], axis=0)
    mean_err = np.mean([mean_costs[p]["dtw_pa_jpe"] for p in mean_costs], axis=0)
    errors = {"metric": "per-sample DTW-PA-JPE, mean over body / lhand / rhand (accumulated cost, m)",
              "systems": {title: [{"name": r["name"], "lang": r["lang"], "text": r["text"], "error": float(e)}
                                  for r, e in zip(records, model_err)],
                          "mean pose": [{"name": r["name"], "lang": r["lang"], "text": r["text"], "error": float(e)}
                                        for r, e in zip(records, mean_err)]}}
    samples = render_samples(records, model_err, run_dir / "report", run_dir, title)
    motion = slrtp_score([r["pred"] for r in records], [r["gt"] for r in records], langs)
    return per_language_means(model_costs, langs), errors, samples, motion
