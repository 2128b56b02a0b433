"""Stage-2 test table: the generator's DTW-JPE / DTW-PA-JPE per language and part next to the mean-pose and
dictionary-concatenation baselines (and, optionally, the stage-1 tokenizer's ceiling: ground-truth codes decoded).

    python scripts/stage2_report.py --store data/synthsign-demo \\
        --metrics outputs/stage2-demo/logs/test/metrics.csv [--baselines outputs/demo/baselines.json] \\
        [--ceiling outputs/stage2-demo/checkpoints/last.ckpt] [--json outputs/stage2-demo/report.json]

All numbers are SOKE's accumulated DTW costs (metres summed along the warping path; lower is better) on the
store's test split, computed with the same joints (built-in skeleton) and DTW code. Below it, the SLRTP 2025
protocol (docs/evaluation.md §6.7) of the model (its test metrics), the ground truth, the mean pose and the
dictionary concatenation (the baselines' ``"slrtp"``), when both files have it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from soke_lightning.core.io import atomic_write_text
from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.metrics.dtw import SignMotionMetrics, parts_from_joint_sets
from soke_lightning.metrics.slrtp import SLRTP_SCORES
from soke_lightning.models.generation import GenerationResult
from soke_lightning.models.tokenizer import decode_streams
from soke_lightning.pipelines.baselines import run_baselines
from soke_lightning.pipelines.report import slrtp_from_metrics
from soke_lightning.training.lm_stage import LMStage

LANGS = ("asl", "csl", "dgs")
PARTS = ("body", "lhand", "rhand")
METRICS = ("dtw_jpe", "dtw_pa_jpe")


def read_test_metrics(path: Path) -> dict:
    """{lang: {part: {metric: value}}} from the CSVLogger file of `soke test`."""
    values: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None) and k.startswith("test/")})
    missing = [f"test/{m}/{lang}/{p}" for lang in LANGS for p in PARTS for m in METRICS
               if f"test/{m}/{lang}/{p}" not in values]
    if missing:
        raise SystemExit(f"{path}: missing {missing[:3]} (...); run `soke test --config experiments/stage2/demo.yaml"
                         f" --ckpt_path CKPT` with the CSV logger first")
    out = {lang: {p: {m: values[f"test/{m}/{lang}/{p}"] for m in METRICS} for p in PARTS} for lang in LANGS}
    out["_extra"] = {k: v for k, v in values.items() if k.startswith("test/") and "/dtw_" not in k
                     and k.split("/")[1] not in SLRTP_SCORES}
    out["_slrtp"] = slrtp_from_metrics(values)
    return out


def slrtp_table(rows: dict[str, dict]) -> str:
    """The SLRTP protocol: one line per system and language ({system: {lang: {score: value}}})."""
    head = f"{'system':<14}{'lang':<6}" + "".join(f"{s:>22}" for s in SLRTP_SCORES)
    lines = [head, "-" * len(head)]
    for system, langs in rows.items():
        for lang in (*LANGS, "all"):
            if lang in langs:
                lines.append(f"{system:<14}{lang:<6}" + "".join(f"{langs[lang][s]:>22.4f}" for s in SLRTP_SCORES))
    return "\n".join(lines)


def ceiling(ckpt: str, store: str) -> dict:
    """The tokenizer's ceiling: the test split's ground-truth codes, decoded like generated ones, scored alike."""
    import torch

    stage = LMStage.from_checkpoint(ckpt)
    tok, norm, backend = stage.tokenizer, stage.tokenizer.normalizer, stage.backend
    dm = SignDataModule([store], batch_size=32)
    dm.setup("test")
    metric = SignMotionMetrics(parts_from_joint_sets(backend.joint_sets), METRICS, LANGS)
    with torch.no_grad():
        for batch in dm.test_dataloader():
            for i, n in enumerate(batch.lengths.tolist()):  # one at a time: codes as `soke encode` makes them
                poses = batch.poses[i:i + 1, :n]
                codes = tok.encode(poses)
                steps = torch.tensor([codes.shape[1]])
                result = GenerationResult(codes, steps, steps[:, None].expand(-1, codes.shape[-1]),
                                          torch.ones(1, dtype=torch.bool), codes.shape[1])
                feats, lengths = decode_streams(tok, result)
                metric.update(backend.from_features(norm.denormalize(feats)),
                              backend.from_features(norm.denormalize(poses)), lengths, batch.lengths[i:i + 1],
                              batch.lang[i:i + 1], batch.keys[i:i + 1])
    values = {k: float(v) for k, v in metric.compute().items()}
    return {lang: {p: {m: values[f"{m}/{lang}/{p}"] for m in METRICS} for p in PARTS} for lang in LANGS}


def table(rows: dict[str, dict]) -> str:
    names = list(rows)
    head = f"{'lang':<5}{'part':<7}" + "".join(
        f"{m + ' ' + n:>{max(12, len(m + n) + 2)}}" for m in ("DTW-JPE", "DTW-PA-JPE") for n in names)
    lines = [head, "-" * len(head)]
    for lang in LANGS:
        for part in PARTS:
            cells = "".join(f"{rows[n][lang][part][m]:>{max(12, len(mm + n) + 2)}.3f}"
                            for m, mm in zip(METRICS, ("DTW-JPE", "DTW-PA-JPE")) for n in names)
            lines.append(f"{lang:<5}{part:<7}{cells}")
    return "\n".join(lines)


def wins(model: dict, other: dict) -> tuple[int, int]:
    cells = [(lang, p, m) for lang in LANGS for p in PARTS for m in METRICS]
    return sum(model[lang][p][m] < other[lang][p][m] for lang, p, m in cells), len(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="the SynthSign store the model was tested on")
    parser.add_argument("--metrics", required=True, help="metrics.csv written by `soke test` (CSVLogger)")
    parser.add_argument("--baselines", default=None, help="JSON of `soke baselines --json` (computed if absent)")
    parser.add_argument("--ceiling", default=None, metavar="STAGE2_CKPT",
                        help="also score the frozen tokenizer on ground-truth codes (its ceiling)")
    parser.add_argument("--json", default=None, help="write every number to this JSON file")
    args = parser.parse_args(argv)

    model = read_test_metrics(Path(args.metrics))
    extra = model.pop("_extra")
    model_slrtp = model.pop("_slrtp")
    if args.baselines and Path(args.baselines).is_file():
        base = json.loads(Path(args.baselines).read_text(encoding="utf-8"))
    else:
        base = run_baselines(args.store, "test")
    rows = {"model": model, "mean": base["mean_pose"], "dict": base["dictionary"]}
    if args.ceiling:
        rows["ceiling"] = ceiling(args.ceiling, args.store)
    print(f"Stage 2 on {args.store} [test]: accumulated DTW cost (m), lower is better. mean = mean-pose baseline, "
          f"dict = dictionary concatenation" + (", ceiling = tokenizer on ground-truth codes" if args.ceiling else ""))
    print(table(rows))
    for name, label in (("mean", "mean pose"), ("dict", "dictionary concatenation")):
        won, total = wins(model, rows[name])
        print(f"model better than {label} in {won}/{total} language x part x metric cells")
    print(", ".join(f"{k.removeprefix('test/')} {v:.2f}" for k, v in sorted(extra.items()) if "/bt_" not in k))
    bt = {k.removeprefix("test/bt_"): v for k, v in extra.items() if k.startswith("test/bt_")}
    if bt:
        print("back-translation of the generated motion (x100; Chinese by character): " + "; ".join(
            f"{m.upper().replace('_', '-')} " + " ".join(f"{lang} {bt[f'{m}/{lang}']:.1f}" for lang in (*LANGS, "all")
                                                          if f"{m}/{lang}" in bt)
            for m in ("bleu4", "rouge_l")))
    slrtp = {"model": model_slrtp, **base["slrtp"]} if model_slrtp and base.get("slrtp") else None
    if slrtp:
        print("SLRTP protocol: FastDTW DTW-MJE (m, pooled; lower is better), wrist distance and duration ratios "
              "(generated / ground truth; 1 is ideal)")
        print(slrtp_table(slrtp))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({**rows, "extra": extra, "slrtp": slrtp}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
