"""`soke backtranslate`: translate motion back to text with a trained back-translation model and score B-T BLEU.

    soke backtranslate --model CKPT --store DIR [--split test] [--mean-pose] [--json OUT]
    soke backtranslate --model CKPT --predictions DIR [--mean-pose] [--json OUT]
    soke backtranslate --model CKPT --store DIR --generate STAGE2_CKPT --mean-pose --json OUT   (the whole triple)

Sources (each scored per language with BLEU-1..4 and ROUGE-L, ×100, :func:`soke_lightning.metrics.bleu.bleu_rouge`,
character level for Chinese):

* ``ground_truth`` (``--store``): the split's ground-truth motion (SOKE's length rule applied, as in training) — the
  ceiling a generator can reach under this judge;
* ``predictions`` (``--predictions``): a :class:`~soke_lightning.callbacks.prediction_writer.PredictionWriter` folder
  (``index.rank*.jsonl`` gives name, text and language; motion from ``<stem>.npz``);
* ``generated`` (``--generate STAGE2_CKPT``, with ``--store``): the split's sentences signed by a stage-2 checkpoint
  (greedy, as ``soke generate``; nothing written to disk) — the score of the generator;
* ``mean_pose`` (``--mean-pose``): the judge's training mean frame held for each sample's length — the floor.

With ground truth, generated motion and the mean pose together the tool also checks, per language, that BLEU-4 is
ordered ceiling > generated > floor (``"ordered"`` in the JSON; a judge that cannot tell them apart is not a judge).

The JSON holds ``{"model", "store", "split", "predictions", "generate", "sources": {source: {lang: {bleu1..4,
rouge_l}, "all": mean over languages}}, "ordered": {lang: bool} or null, "samples": {source: [{"name", "lang", "text",
"hypothesis"}]}}``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="back-translation checkpoint (experiments/backtranslation)")
    parser.add_argument("--store", default=None, help="packed store: back-translate its ground-truth motion")
    parser.add_argument("--split", default="test", help="store split (default: test)")
    parser.add_argument("--predictions", default=None,
                        help="PredictionWriter folder (index.rank*.jsonl + .npz files): back-translate them")
    parser.add_argument("--generate", default=None, metavar="STAGE2_CKPT",
                        help="with --store: sign the split's sentences with this stage-2 checkpoint and score them")
    parser.add_argument("--tokenizer", default=None,
                        help="--generate: stage-1 checkpoint instead of the path stored in the stage-2 checkpoint")
    parser.add_argument("--device", default="cpu", help="torch device of --generate and the judge (default cpu)")
    parser.add_argument("--mean-pose", action="store_true",
                        help="also score the mean-pose baseline (mean frame held for each sample's length)")
    parser.add_argument("--max-samples", type=int, default=None, help="score only the first N samples per source")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="write scores and hypotheses to this JSON file")


def read_predictions(folder: str | Path) -> list[dict]:
    """Records ``{name, text, lang, raw}`` of a PredictionWriter folder (every rank's index, de-duplicated)."""
    from soke_lightning.render.exports import load_smplx_npz

    folder = Path(folder)
    indexes = sorted(folder.glob("index.rank*.jsonl"))
    if not indexes:
        raise FileNotFoundError(f"{folder}: no index.rank*.jsonl; expected a PredictionWriter output folder "
                                f"(`soke predict ... --trainer.callbacks+=PredictionWriter` with formats [npz])")
    records, seen = [], set()
    for index in indexes:
        for line_no, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry["name"] in seen:
                continue
            npz = folder / f"{entry['stem']}.npz"
            if not npz.is_file():
                raise FileNotFoundError(f"{index}:{line_no}: sample {entry['name']!r} has no {npz.name} (files "
                                        f"{entry.get('files')}); write predictions with formats including npz")
            seen.add(entry["name"])
            records.append({"name": entry["name"], "text": entry["text"], "lang": entry["lang"],
                            "raw": load_smplx_npz(npz).raw})
    return records


def read_store(path: str | Path, split: str) -> list[dict]:
    """Records ``{name, text, lang, raw}`` of a store split, with SOKE's length rule (centre crop) applied."""
    from soke_lightning.data.processing import length_indices
    from soke_lightning.data.store import open_store

    sp = open_store(path).split(split)
    out = []
    for i in range(len(sp)):
        s = sp[i]
        out.append({"name": s.name, "text": s.text, "lang": s.lang, "raw": s.frames[length_indices(s.num_frames)]})
    return out


def generate_records(stage2_ckpt: str | Path, records: list[dict], tokenizer: str | None = None,
                     batch_size: int = 32, device: str = "cpu") -> list[dict]:
    """Records ``{name, text, lang, raw}`` of ``records``' sentences signed by a stage-2 checkpoint (greedy).

    ``raw`` holds denormalised features [T, 133] (what :meth:`BackTranslator.translate_raw` reads).
    """
    import torch

    from soke_lightning.stages.generate import Request, generate
    from soke_lightning.stages.lm_stage import LMStage

    stage = LMStage.from_checkpoint(stage2_ckpt, tokenizer_ckpt=tokenizer).to(torch.device(device))
    requests = [Request(r["name"], r["text"], r["lang"]) for r in records]
    out = []
    for prediction, _, _ in generate(stage, requests, [r.text for r in requests], batch_size):
        raw = prediction.raw
        out.append({"name": prediction.name, "text": prediction.text, "lang": prediction.lang,
                    "raw": raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)})
    return out


def ordering(sources: dict, metric: str = "bleu4") -> dict[str, bool] | None:
    """{lang: ground_truth > model > mean_pose on ``metric``} when all three were scored (model: the ``generated``
    source, else ``predictions``)."""
    model = "generated" if "generated" in sources else "predictions"
    if not {"ground_truth", model, "mean_pose"} <= set(sources):
        return None
    gt, gen, mean = sources["ground_truth"], sources[model], sources["mean_pose"]
    return {lang: bool(gt[lang][metric] > gen[lang][metric] > mean[lang][metric])
            for lang in gt if lang in gen and lang in mean}


def score_records(translator, records: list[dict], batch_size: int = 32, mean_pose: bool = False,
                  progress: str | None = None) -> tuple[dict, list[dict]]:
    """Back-translate ``records`` (or the mean pose of their lengths) and score them per language.

    Returns:
        ({lang: {bleu1..4, rouge_l}, "all": mean over languages}, [{name, lang, text, hypothesis}]).
    """
    import torch
    from tqdm import tqdm

    from soke_lightning.data.layout import FEATURE_DIM
    from soke_lightning.metrics.bleu import bleu_rouge
    from soke_lightning.stages.backtranslation import SCORES

    hyps: list[str] = []
    bar = tqdm(total=len(records), desc=progress, disable=progress is None, unit="sample")
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        langs = [r["lang"] for r in chunk]
        if mean_pose:  # the mean frame is zero in normalised space
            lengths = torch.tensor([len(r["raw"]) for r in chunk])
            hyps += translator.translate(torch.zeros(len(chunk), int(lengths.max()), FEATURE_DIM), lengths, langs)
        else:
            hyps += translator.translate_raw([r["raw"] for r in chunk], langs, batch_size=batch_size)
        bar.update(len(chunk))
    bar.close()
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_lang[r["lang"]].append(i)
    scores = {lang: bleu_rouge([hyps[i] for i in idx], [records[i]["text"] for i in idx], lang)
              for lang, idx in sorted(by_lang.items())}
    if scores:
        scores["all"] = {k: float(np.mean([v[k] for v in scores.values()])) for k in SCORES}
    samples = [{"name": r["name"], "lang": r["lang"], "text": r["text"], "hypothesis": h}
               for r, h in zip(records, hyps)]
    return scores, samples


def format_table(sources: dict) -> str:
    from soke_lightning.stages.backtranslation import SCORES

    lines = [f"{'source':<14}{'lang':<6}" + "".join(f"{s:>9}" for s in SCORES)]
    for source, scores in sources.items():
        for lang, values in scores.items():
            lines.append(f"{source:<14}{lang:<6}" + "".join(f"{values[s]:>9.2f}" for s in SCORES))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from soke_lightning.stages.backtranslation import BackTranslator

    if args.store is None and args.predictions is None:
        raise SystemExit("soke backtranslate: give --store DIR (ground truth) and/or --predictions DIR")
    translator = BackTranslator.from_checkpoint(args.model).to(args.device)
    inputs: dict[str, list[dict]] = {}
    if args.store is not None:
        inputs["ground_truth"] = read_store(args.store, args.split)
    if args.predictions is not None:
        inputs["predictions"] = read_predictions(args.predictions)
    if args.max_samples is not None:
        inputs = {k: v[: args.max_samples] for k, v in inputs.items()}
    if args.generate is not None:
        if "ground_truth" not in inputs:
            raise SystemExit("soke backtranslate: --generate signs the sentences of --store DIR; give --store")
        inputs["generated"] = generate_records(args.generate, inputs["ground_truth"], args.tokenizer,
                                               args.batch_size, args.device)
    sources, samples = {}, {}
    for source, records in list(inputs.items()):
        sources[source], samples[source] = score_records(translator, records, args.batch_size, progress=source)
    if args.mean_pose:
        records = next(iter(inputs.values()))
        sources["mean_pose"], samples["mean_pose"] = score_records(translator, records, args.batch_size,
                                                                   mean_pose=True, progress="mean_pose")
    print(f"back-translation with {args.model} (BLEU-n and ROUGE-L x100; Chinese on characters)")
    print(format_table(sources))
    ordered = ordering(sources)
    if ordered is not None:
        print("BLEU-4 ground_truth > model > mean_pose: "
              + ", ".join(f"{lang} {'yes' if ok else 'NO'}" for lang, ok in ordered.items()))
    if args.json:
        out = {"model": str(args.model), "store": args.store, "split": args.split, "predictions": args.predictions,
               "generate": args.generate, "sources": sources, "ordered": ordered, "samples": samples}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
