"""Real recorded signing through both stages: the fingerspelling lexicon of the MIT-licensed `spoken-to-signed` package.

    make fingerspelling                     # pip download + unzip, then this script
    OMP_NUM_THREADS=1 python scripts/fingerspelling.py --lexicon DIR --out outputs/fingerspelling

``DIR`` is ``spoken_to_signed/assets/fingerspelling_lexicon`` of the unpacked wheel: 600 `.pose` clips (MediaPipe
Holistic) of single fingerspelled letters in 19 sign languages, with ``index.csv``. Steps, each timed:

1. **index + prepare**: the lexicon's index becomes our CSV (text = the letter, language = the ISO 639-3 sign
   language, spoken = its mBART tag); each clip goes to train / val / test by a hash of its path (8 / 1 / 1);
   ``soke prepare --corpus pose`` logic with the ``holistic`` layout.
2. **stage 1** on the real clips: ``soke fit`` + ``soke test`` (keypoint errors of held-out clips per part, in
   shoulder widths), against the **mean pose** of the training clips scored the same way, and codebook usage.
3. **stage 2**, text -> fingerspelling. The lexicon has isolated letters only, so words are COMPOSED: each word is
   the concatenation of the real recorded clips of its letters (random 3-5 letter strings per language; the text
   is the spaced letters, e.g. ``"k a t"``). Test words never occur in training. The LM is trained on the train
   words and scored with DTW (``dtw_jpe`` per part and ``avg``, shoulder widths, missing points left out) on the
   test words per language, against two baselines scored by the same metric: the **mean pose**, and
   **concatenation**: the letter dictionary as retrieval source, i.e. the stage-1 codes of each letter's clip
   concatenated and decoded (what retrieval alone could produce; it is an upper bound here because the ground
   truth is itself a concatenation of the same clips).
4. GIFs (ground truth | stage-1 reconstruction | generated) and `.pose` files of a few test words.

Everything goes to ``--out``; ``results.json`` holds the numbers and timings. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from soke_lightning.cli.lightning import SokeCLI
from soke_lightning.core.feature_layout import load_feature_layout
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.data.normalization import STATS_FILE
from soke_lightning.data.pose_corpus import prepare_pose_corpus
from soke_lightning.data.store import Sample, StoreWriter, open_store
from soke_lightning.metrics.dtw import SignMotionMetrics
from soke_lightning.metrics.functional.keypoints import keypoint_errors, keypoint_metric_names
from soke_lightning.metrics.functional.parts import MASKABLE_VARIANTS, keypoint_parts
from soke_lightning.models.tokenizer import SignTokenizer
from soke_lightning.render.animation import render_animation
from soke_lightning.render.keypoints import drawable_points, export_keypoint_pose
from soke_lightning.training.lm_stage import LMStage

ROOT = Path(__file__).resolve().parents[1]
DATA_YAML = str(ROOT / "datamodules" / "synthsign.yaml")
#: mBART-style tags of the lexicon's spoken languages.
SPOKEN = {"en": "en_XX", "de": "de_DE", "fr": "fr_XX", "es": "es_XX", "it": "it_IT", "pt": "pt_XX", "cs": "cs_CZ",
          "et": "et_EE", "lt": "lt_LT", "tr": "tr_TR", "uk": "uk_UA", "sv": "sv_SE", "hr": "hr_HR", "el": "el_GR",
          "sk": "sk_SK", "ar": "ar_AR"}
PROC = dict(min_len=8, max_len=256, unit_len=4)
log = logging.getLogger("fingerspelling")


def split_of(key: str) -> str:
    h = zlib.crc32(key.encode()) % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def write_index(lexicon: Path, out: Path) -> Path:
    rows, seen = [], set()
    with open(lexicon / "index.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["path"] in seen:  # the index lists some clips twice (under two sign languages): keep the first
                continue
            seen.add(r["path"])
            spoken = SPOKEN.get(r["spoken_language"], f"{r['spoken_language']}_{r['spoken_language'].upper()}")
            rows.append({"file": r["path"], "text": r["words"], "language": r["signed_language"], "spoken": spoken,
                         "split": split_of(r["path"]), "name": Path(r["path"]).stem})
    path = out / "letters.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def data_args(store: Path, batch: int, extra=()) -> list[str]:
    args = ["--data", DATA_YAML, "--data.init_args.stores", f"[{store}]", "--data.init_args.batch_size", str(batch)]
    for k, v in PROC.items():
        args += [f"--data.init_args.{k}", str(v)]
    return args + list(extra)


def metrics_of(cli) -> dict:
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


@torch.no_grad()
def mean_pose_kpe(store: Path, tokenizer: SignTokenizer) -> dict:
    """Keypoint errors of the training mean pose against every held-out (test) clip, per part."""
    layout = tokenizer.feature_layout
    dm = SignDataModule([str(store)], eval_batch_size=64, **PROC)
    dm.setup("test")
    norm = tokenizer.normalizer
    sums, counts = {}, {}
    names = keypoint_metric_names(layout)
    for batch in dm.test_dataloader():
        for b, lang in enumerate(batch.lang):
            n = int(batch.lengths[b])
            gt = norm.denormalize(batch.poses[b, :n])
            pred = norm.denormalize(torch.zeros_like(gt))
            s, c = keypoint_errors(layout, layout.points_of(pred), layout.points_of(gt),
                                   layout.point_mask(batch.feature_mask[b, :n]))
            for key in ("all", lang):
                sums[key] = sums.get(key, 0) + s.sum(0)
                counts[key] = counts.get(key, 0) + c.sum(0)
    return {f"{key}/{name}": float(sums[key][i] / counts[key][i]) for key in sums for i, name in enumerate(names)
            if counts[key][i] > 0}


def compose_words(letters: Path, out: Path, words_per_lang: dict, seed: int, min_letters: int) -> tuple[Path, dict]:
    """A store of words made of the letters' real clips (train split clips), plus the letters of every word."""
    rng = np.random.default_rng(seed)
    store = open_store(letters)
    pool: dict[str, dict[str, Sample]] = {}
    for s in store.split("train"):
        pool.setdefault(s.lang, {}).setdefault(s.text, s)
    langs = sorted(lang for lang, p in pool.items() if len(p) >= min_letters)
    writer = StoreWriter(out, info={**store.info, "words": "composed from real letter clips"}, overwrite=True,
                         layout=store.layout)
    spelled = {}
    for split, n in words_per_lang.items():
        with writer.split(split) as sw:
            for lang in langs:
                alphabet = sorted(pool[lang])
                made = 0
                while made < n:
                    word = [alphabet[i] for i in rng.integers(0, len(alphabet), rng.integers(3, 6))]
                    text = " ".join(x.lower() for x in word)
                    key = (lang, text)
                    if key in spelled:
                        continue
                    spelled[key] = (split, word)
                    frames = np.concatenate([pool[lang][x].frames for x in word])
                    sw.add(Sample(f"{lang}_{made:03d}", text, lang, "fingerspelling", frames,
                                  pool[lang][word[0]].fps, {"letters": word, "composed_from": "real letter clips"}))
                    made += 1
    # the words are normalised with stage 1's statistics (those of the letter clips), as the tokenizer expects
    shutil.copyfile(letters / STATS_FILE, out / STATS_FILE)
    return out, {"languages": langs, "letters_per_language": {k: len(pool[k]) for k in langs}}


@torch.no_grad()
def score_stage2_baselines(words: Path, letters: Path, tokenizer: SignTokenizer) -> dict:
    """DTW of the mean pose and of concatenated letter codes (decoded) on the test words, per language."""
    layout = tokenizer.feature_layout
    store = open_store(letters)
    codes_of: dict[tuple[str, str], torch.Tensor] = {}
    norm = tokenizer.normalizer
    for s in store.split("train"):
        key = (s.lang, s.text)
        if key not in codes_of:
            x = norm.normalize(torch.from_numpy(layout.features(s.frames)))
            x = x * torch.from_numpy(layout.feature_mask(s.frames))
            pad = (-len(x)) % tokenizer.downsample_rate
            x = torch.cat([x, x[-1:].expand(pad, -1)]) if pad else x
            codes_of[key] = tokenizer.encode(x[None])[0]
    dm = SignDataModule([str(words)], eval_batch_size=32, **{**PROC, "max_len": 400})
    dm.setup("test")
    langs = dm.languages
    metrics = {name: SignMotionMetrics(keypoint_parts(layout), MASKABLE_VARIANTS, langs) for name in
               ("mean_pose", "concatenation")}
    test = open_store(words).split("test")
    for batch in dm.test_dataloader():
        gt = layout.points_of(norm.denormalize(batch.poses))
        visible = layout.point_mask(batch.feature_mask)
        mean = layout.points_of(norm.denormalize(torch.zeros_like(batch.poses)))
        metrics["mean_pose"].update(mean, gt, batch.lengths, batch.lengths, batch.lang, batch.keys, visible)
        preds, lengths = [], []
        for name, lang in zip(batch.name, batch.lang):
            letters_of = test.by_name(name).meta["letters"]
            codes = torch.cat([codes_of[(lang, x)] for x in letters_of])
            preds.append(layout.points_of(norm.denormalize(tokenizer.decode(codes[None])[0])))
            lengths.append(len(preds[-1]))
        padded = torch.zeros(len(preds), max(lengths), layout.num_points, 3)
        for i, p in enumerate(preds):
            padded[i, : len(p)] = p
        metrics["concatenation"].update(padded, gt, torch.tensor(lengths), batch.lengths, batch.lang, batch.keys,
                                        visible)
    return {name: {k: float(v) for k, v in m.compute().items()} for name, m in metrics.items()}


@torch.no_grad()
def media(words: Path, stage2_ckpt: Path, tokenizer: SignTokenizer, out: Path, count: int) -> list[str]:
    """GIFs (ground truth | stage-1 reconstruction | generated) and .pose files of the first test words."""
    layout = tokenizer.feature_layout
    lm = LMStage.from_checkpoint(stage2_ckpt)
    norm = tokenizer.normalizer
    test = open_store(words).split("test")
    paths = []
    for i in range(min(count, len(test))):
        s = test[i]
        feats = torch.from_numpy(layout.features(s.frames))
        visible = layout.point_mask(layout.feature_mask(s.frames))
        x = norm.normalize(feats) * torch.from_numpy(layout.feature_mask(s.frames))
        x = x[: len(x) - len(x) % tokenizer.downsample_rate]
        recon = layout.points_of(norm.denormalize(tokenizer(x[None]).recon[0])).detach().numpy()
        gen, lengths, _ = lm.generate([s.text], [s.lang])
        generated = layout.points_of(gen[0, : int(lengths[0])]).numpy()
        gt = drawable_points(layout.points_of(feats).numpy(), visible, layout)
        stem = out / f"{s.lang}_{s.text.replace(' ', '')}"
        paths.append(str(render_animation([gt, recon, generated], layout.connections, stem.with_suffix(".gif"),
                                          titles=["ground truth (real clips)", "stage-1 reconstruction",
                                                  "generated"], caption=f"{s.lang}: {s.text}",
                                          joint_sets=layout.joint_sets(), fps=s.fps)))
        paths.append(str(export_keypoint_pose(stem.with_suffix(".pose"), generated, layout, s.fps)))
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lexicon", required=True, help="spoken_to_signed/assets/fingerspelling_lexicon")
    parser.add_argument("--out", default="outputs/fingerspelling")
    parser.add_argument("--stage1-epochs", type=int, default=40)
    parser.add_argument("--stage2-epochs", type=int, default=30)
    parser.add_argument("--words", type=int, default=60, help="training words per language (val/test: 8 each)")
    parser.add_argument("--skip-stage2", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the letters store and the stage-1 results of an earlier run in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lexicon = Path(args.lexicon)
    if not (lexicon / "index.csv").is_file():
        print(f"fingerspelling: {lexicon / 'index.csv'} not found; pass the unpacked lexicon folder", file=sys.stderr)
        return 2
    letters = out / "store-letters"
    ckpt1 = out / "stage1-keypoints-debug" / "checkpoints" / "last.ckpt"
    if args.resume and (out / "results.json").is_file() and ckpt1.is_file():
        results = json.loads((out / "results.json").read_text())
        open_store(letters)  # registers the corpus's languages
        results["stage1"]["mean_pose"] = mean_pose_kpe(letters, SignTokenizer.from_checkpoint(ckpt1))
        (out / "results.json").write_text(json.dumps(results, indent=2))
        return run_stage2(args, out, letters, ckpt1, SignTokenizer.from_checkpoint(ckpt1), results)
    results: dict = {"timings_s": {}}
    t = time.perf_counter()
    index = write_index(lexicon, out)
    report = prepare_pose_corpus(lexicon, index, letters, layout="holistic", corpus="fingerspelling",
                                 overwrite=True)
    results["prepare"] = {k: {"listed": v.listed, "written": v.written, "frames": v.frames, "skipped": v.skipped}
                          for k, v in report.splits.items()}
    results["timings_s"]["prepare"] = time.perf_counter() - t
    sys.argv = ["soke"]
    os.environ["SOKE_OUT"] = str(out)  # the keypoint debug configs write under $SOKE_OUT
    env = ["--trainer.max_epochs", str(args.stage1_epochs), "--trainer.check_val_every_n_epoch", "10",
           "--model.init_args.tokenizer.init_args.width", "64", "--model.init_args.tokenizer.init_args.code_dim", "32",
           "--model.init_args.tokenizer.init_args.depth", "2",
           "--model.init_args.tokenizer.init_args.codebook_sizes", "{body: 64, lhand: 128, rhand: 128}"]
    stage1_args = ["--config", str(ROOT / "experiments/stage1/keypoints_debug.yaml"), *data_args(letters, 32), *env]
    t = time.perf_counter()
    SokeCLI(args=["fit", *stage1_args])
    results["timings_s"]["stage1_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    test1 = SokeCLI(args=["test", *stage1_args, "--ckpt_path", str(ckpt1)])
    results["timings_s"]["stage1_test"] = time.perf_counter() - t
    tokenizer = SignTokenizer.from_checkpoint(ckpt1)
    results["stage1"] = {"held_out": {k: v for k, v in metrics_of(test1).items() if k.startswith("test/")},
                         "mean_pose": mean_pose_kpe(letters, tokenizer)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if args.skip_stage2:
        return 0
    return run_stage2(args, out, letters, ckpt1, tokenizer, results)


def run_stage2(args, out: Path, letters: Path, ckpt1: Path, tokenizer: SignTokenizer, results: dict) -> int:
    from soke_lightning.cli import encode

    os.environ["SOKE_OUT"] = str(out)
    sys.argv = ["soke"]

    t = time.perf_counter()
    words, info = compose_words(letters, out / "store-words", {"train": args.words, "val": 4, "test": 8}, seed=0,
                                min_letters=20)
    results["words"] = info
    cache = out / "tokens-words"
    encode.run(argparse.Namespace(tokenizer=str(ckpt1), data=DATA_YAML, out=str(cache), splits=["train", "val", "test"],
                                  set=[f"init_args.stores=[{words}]", "init_args.min_len=8", "init_args.max_len=400",
                                       "init_args.unit_len=4"],
                                  batch_size=32, device="cpu", preview=0, preview_out=None))
    results["timings_s"]["compose_and_encode"] = time.perf_counter() - t
    stage2_args = ["--config", str(ROOT / "experiments/stage2/keypoints_debug.yaml"),
                   *data_args(words, 16, ["--data.init_args.max_len", "400", "--data.init_args.token_cache",
                                          str(cache)]),
                   "--model.init_args.tokenizer_ckpt", str(ckpt1), "--trainer.max_epochs", str(args.stage2_epochs),
                   "--trainer.check_val_every_n_epoch", str(args.stage2_epochs),
                   "--model.init_args.mbart.d_model", "128", "--model.init_args.mbart.encoder_layers", "2",
                   "--model.init_args.mbart.decoder_layers", "2", "--model.init_args.mbart.encoder_ffn_dim", "256",
                   "--model.init_args.mbart.decoder_ffn_dim", "256",
                   "--model.init_args.mbart.encoder_attention_heads", "4",
                   "--model.init_args.mbart.decoder_attention_heads", "4",
                   "--model.init_args.generation", "{max_codes: 40}", "--model.init_args.text_vocab_size", "300"]
    t = time.perf_counter()
    SokeCLI(args=["fit", *stage2_args])
    results["timings_s"]["stage2_fit"] = time.perf_counter() - t
    ckpt2 = out / "stage2-keypoints-debug" / "checkpoints" / "last.ckpt"
    t = time.perf_counter()
    test2 = SokeCLI(args=["test", *stage2_args, "--ckpt_path", str(ckpt2)])
    results["timings_s"]["stage2_test"] = time.perf_counter() - t
    results["stage2"] = {"generated": {k: v for k, v in metrics_of(test2).items() if k.startswith("test/dtw")},
                         **score_stage2_baselines(words, letters, tokenizer)}
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    t = time.perf_counter()
    results["media"] = media(words, ckpt2, tokenizer, out / "media", 4)
    results["timings_s"]["media"] = time.perf_counter() - t
    results["languages"] = {k: LANGUAGES[k].sign_tag for k in info["languages"]}
    results["layout"] = load_feature_layout("holistic").describe()
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results["timings_s"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
