"""Whole-test-split evaluation time of a trained stage-2 model, before and after the fast-evaluation work, one run.

What `soke test` does per batch, timed stage by stage on the same model and the same sentences:
generation (text -> codes), decoding (codes -> features), forward kinematics, DTW-JPE and DTW-PA-JPE for every
part (SignMotionMetrics' parts and joints). Two arms:

* ``before``: generation with transformers' growing cache and finished samples fed ``</s>`` until the longest
  stops (``cache: dynamic, drop_finished: false``, the generation of the time), forward kinematics of every
  padded frame, DTW-PA-JPE cell by cell with one scalar QCP solve per frame
  pair (the algorithm of the time, here compiled with numba like ours);
* ``after``: the defaults (static KV cache, finished samples dropped; only valid frames posed; DTW-PA-JPE solved
  a whole row of target frames at once).

Decoding (one stage-1 decoder call per sample and part, exact whatever else is in the batch) is the same in both.

Both arms must give the same codes and the same scores (float32 decoding and kinematics, float64 DTW): the
benchmark reports the agreement. The SLRTP protocol (Python FastDTW, added later) is not part of either arm.

    python bench/bench_eval.py [--ckpt outputs/stage2-demo/checkpoints/last.ckpt] [--store data/synthsign-demo]

Needs a trained model: `make demo` (or `make train-stage2`) writes the default checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from soke_lightning.data.datamodule import SignDataModule  # noqa: E402
from soke_lightning.metrics.functional.dtw import VARIANTS, dtw_joint_error, procrustes_arrays  # noqa: E402
from soke_lightning.models.tokenizer import decode_streams  # noqa: E402
from soke_lightning.training.lm_stage import LMStage  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib: shared benchmark pieces
from benchlib import per_cell_pa_dtw  # noqa: E402

ARMS = {"before": {"cache": "dynamic", "drop_finished": False}, "after": {}}


def score(pred, target, lp, lt, parts, arm: str) -> tuple[np.ndarray, float, float]:
    """[B, 2, P] DTW-JPE / DTW-PA-JPE scores of a batch; seconds of DTW-JPE and of DTW-PA-JPE."""
    scores = np.empty((pred.shape[0], 2, len(parts)))
    jpe_s = pa_s = 0.0
    for p, part in enumerate(parts):
        x, y = pred, target
        if part.select is not None:
            x, y = x[:, :, list(part.select)], y[:, :, list(part.select)]
        start = time.perf_counter()
        scores[:, 0, p] = dtw_joint_error(x, y, lp, lt, eval_joints=part.eval_joints, align_index=part.align_index,
                                          **VARIANTS["dtw_jpe"]).numpy()
        jpe_s += time.perf_counter() - start
        start = time.perf_counter()
        if arm == "after":
            scores[:, 1, p] = dtw_joint_error(x, y, lp, lt, eval_joints=part.eval_joints,
                                              align_joints=part.align_joints, align_index=part.align_index,
                                              **VARIANTS["dtw_pa_jpe"]).numpy()
        else:
            arrays = procrustes_arrays(x, y, part.align_joints, part.eval_joints)
            out = np.empty(x.shape[0])
            per_cell_pa_dtw(*arrays, lp.numpy(), lt.numpy(), out)
            scores[:, 1, p] = out
        pa_s += time.perf_counter() - start
    return scores, jpe_s, pa_s


def evaluate(stage: LMStage, batches: list, arm: str) -> dict:
    """One pass over the test batches with an arm's settings: stage timings, codes and scores."""
    timings = dict.fromkeys(("generate", "decode", "kinematics", "dtw_jpe", "dtw_pa_jpe"), 0.0)
    codes, scores = [], []
    backend, norm = stage.backend, stage.tokenizer.normalizer
    for batch in batches:
        src = stage.encode_prompts(list(batch.text), list(batch.lang))
        start = time.perf_counter()
        result = stage.lm.generate(src.input_ids, src.attention_mask, list(batch.lang), stage.generation_config,
                                   **ARMS[arm])
        timings["generate"] += time.perf_counter() - start
        start = time.perf_counter()
        feats, lengths = decode_streams(stage.tokenizer, result)
        feats = norm.denormalize(feats)
        timings["decode"] += time.perf_counter() - start
        start = time.perf_counter()
        if arm == "before":  # every padded frame posed
            pred = backend.from_features(feats)
            target = backend.from_features(norm.denormalize(batch.poses))
        else:
            pred = backend.from_features(feats, lengths)
            target = backend.from_features(norm.denormalize(batch.poses), batch.lengths)
        timings["kinematics"] += time.perf_counter() - start
        s, jpe_s, pa_s = score(pred, target, lengths, batch.lengths, stage._metric_parts, arm)
        timings["dtw_jpe"] += jpe_s
        timings["dtw_pa_jpe"] += pa_s
        codes.append(result.codes)
        scores.append(s)
    timings["total"] = sum(timings.values())
    return {"timings": timings, "codes": codes, "scores": np.concatenate(scores)}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    out_root = os.environ.get("SOKE_OUT", "outputs")
    parser.add_argument("--ckpt", default=f"{out_root}/stage2-demo/checkpoints/last.ckpt")
    parser.add_argument("--store", default=os.environ.get("SOKE_SYNTHSIGN", "data/synthsign-demo"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=50, help="the demo's eval_batch_size")
    parser.add_argument("--limit", type=int, default=None, help="at most this many sentences")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many passes per arm (interleaved)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        return {"skipped": f"{ckpt}: no stage-2 checkpoint; run `make demo` (or pass --ckpt)"}
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    stage = LMStage.from_checkpoint(ckpt)
    dm = SignDataModule([args.store], batch_size=args.batch_size)
    dm.setup("test")
    batches, seen = [], 0
    for batch in dm.test_dataloader():
        batches.append(batch)
        seen += len(batch)
        if args.limit is not None and seen >= args.limit:
            break
    with torch.inference_mode():
        evaluate(stage, batches[:1], "before")  # numba compilation and first-call costs out of the timings
        evaluate(stage, batches[:1], "after")
        runs = {arm: [] for arm in ARMS}
        for _ in range(args.repeats):
            for arm in ARMS:
                runs[arm].append(evaluate(stage, batches, arm))
    best = {arm: min(r, key=lambda x: x["timings"]["total"]) for arm, r in runs.items()}
    before, after = best["before"], best["after"]
    same_codes = all(torch.equal(a, b) for a, b in zip(before["codes"], after["codes"]))
    rel = np.abs(after["scores"] / before["scores"] - 1)
    return {
        "checkpoint": str(ckpt), "sentences": seen, "batch_size": args.batch_size, "threads": args.threads,
        "seconds": {arm: {k: round(v, 3) for k, v in best[arm]["timings"].items()} for arm in ARMS},
        "speedup_total": round(before["timings"]["total"] / after["timings"]["total"], 2),
        "speedup_per_stage": {k: round(before["timings"][k] / max(after["timings"][k], 1e-9), 2)
                              for k in before["timings"]},
        "same_codes": same_codes,
        "max_rel_diff": {"dtw_jpe": float(rel[:, 0].max()), "dtw_pa_jpe": float(rel[:, 1].max())},
        "target": "total time halves (speedup_total >= 2) with the same codes and scores",
    }


if __name__ == "__main__":
    import json
    print(json.dumps(main(sys.argv[1:]), indent=2))
