"""`soke generate`: text -> sign-language motion with a trained stage-2 checkpoint.

    soke generate --ckpt outputs/stage2-demo/checkpoints/last.ckpt --lang asl --text "the weather is nice" --out DIR
    soke generate --ckpt CKPT --lang dgs --input sentences.txt --out DIR          (one sentence per line)
    soke generate --ckpt CKPT --store data/synthsign-demo --split test --n 1 --out DIR   (next to the ground truth)

For every sentence: ``DIR/<name>.npz`` (the 179-d SMPL-X parameter frames in the official layout, joints, text,
language, fps; see :func:`soke_lightning.render.exports.export_smplx_npz`) and ``DIR/<name>.gif`` (skeleton
animation captioned with the text; ground truth | prediction in ``--store`` mode), plus ``.mp4`` with ``--mp4``
when ffmpeg (imageio-ffmpeg) is available, and one line per sample in ``DIR/index.rank0.jsonl``.

A model trained on a keypoint feature layout (e.g. ``holistic``, from ``soke prepare --corpus pose``) writes
``DIR/<name>.pose`` (pose-format with the layout's header, readable by pose-viewer), ``.npz`` points and ``.gif``
drawn from the layout's connections instead (``--formats pose npz gif``; bvh does not apply).

The checkpoint holds the LM and its text tokenizer; the frozen stage-1 tokenizer is read from the path stored in
it (``--tokenizer`` to point elsewhere) and must still have the hash recorded at training time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from soke_lightning.callbacks.prediction_writer import PredictionWriter
from soke_lightning.core.io import safe_stem
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.core.types import DEFAULT_FPS, Request
from soke_lightning.models.generation import PRECISIONS
from soke_lightning.pipelines.generate import (
    GenerateError,
    build_prompts,
    check_lang,
    check_lengths,
    check_text,
    generate,
    generate_keypoints,
    store_requests,
    write_keypoint_outputs,
)
from soke_lightning.render.animation import render_animation
from soke_lightning.retrieval.matcher import INFLECTIONS, KNOWN_WORD_SOURCES, ORDERS, SEPARATORS
from soke_lightning.training.lm_stage import LMStage


def add_retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    """The retrieval prompt options of `soke generate` / `soke serve`; unset ones take the checkpoint's own recipe."""
    group = parser.add_argument_group("retrieval prompts (with --dictionary; default: what the model was trained "
                                      "with, else SOKE's)")
    group.add_argument("--top-k", type=int, default=None, help="entries per prompt (SOKE: 3)")
    group.add_argument("--max-codes-per-entry", type=int, default=None, help="code steps per entry (SOKE: 10)")
    group.add_argument("--order", default=None, choices=list(ORDERS), help="which entries first (SOKE: longest)")
    group.add_argument("--separator", default=None, choices=list(SEPARATORS),
                       help="'index' (SOKE: 'Key word i, <codes>') or 'word' ('Key word i, <word>: <codes>')")
    group.add_argument("--inflection", default=None, choices=list(INFLECTIONS),
                       help="also match English/German words by a dictionary word + an inflection suffix (SOKE: none)")
    group.add_argument("--known-words", default=None, choices=list(KNOWN_WORD_SOURCES),
                       help="known words that block false hits inside them, e.g. Chinese 为什么 (SOKE: none)")


def retrieval_overrides(args: argparse.Namespace) -> dict:
    """The retrieval prompt options given on the command line (None: not given)."""
    return {"top_k": args.top_k, "max_codes_per_entry": args.max_codes_per_entry, "order": args.order,
            "separator": args.separator, "inflection": args.inflection, "known_words": args.known_words}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="stage-2 checkpoint (LMStage .ckpt)")
    parser.add_argument("--out", required=True, help="output folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", default=None, help="a sentence (repeatable)")
    source.add_argument("--input", default=None, help="a UTF-8 text file, one sentence per line (blank lines skipped)")
    source.add_argument("--store", default=None, help="a packed store: sign its --split sentences, with ground truth")
    parser.add_argument("--lang", default=None, help=f"language of the sentences: {', '.join(LANGUAGES)} "
                        f"(required with --text/--input; with --store: only that language)")
    parser.add_argument("--split", default="test", help="--store split (default test)")
    parser.add_argument("--n", type=int, default=1, help="--store: samples per language (default 1)")
    parser.add_argument("--tokenizer", default=None, help="stage-1 checkpoint to use instead of the path stored in "
                        "the stage-2 checkpoint (its hash must match)")
    parser.add_argument("--dictionary", default=None, help="sign dictionary (`soke dict build`) for retrieval-"
                        "augmented prompts (docs/design.md §5); use it for a model trained with the RetrievalCallback")
    add_retrieval_arguments(parser)
    parser.add_argument("--formats", nargs="+", default=["npz", "gif"], choices=["npz", "pose", "bvh", "gif"],
                        help="files per sentence (default: npz gif)")
    parser.add_argument("--mp4", action="store_true", help="also write an MP4 when ffmpeg is available")
    parser.add_argument("--max-codes", type=int, default=None, help="maximum code steps (x4 frames); default: the "
                        "checkpoint's generation setting")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample")
    parser.add_argument("--precision", default=None, choices=list(PRECISIONS),
                        help="decoder steps in this precision (default: the checkpoint's generation config, float32); "
                             "int8 = dynamic quantisation of the decoder's linear layers (CPU), bfloat16/float16 "
                             "for GPUs; reduced precisions may change codes where two score almost alike")
    parser.add_argument("--compile", default=None, metavar="MODE",
                        help="torch.compile the decoder step in this mode (e.g. default, reduce-overhead = CUDA "
                             "graphs on a GPU); pays off for long runs only")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate of --text/--input outputs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def read_requests(args: argparse.Namespace) -> list[Request]:
    """The sentences to sign, from --text, --input or --store."""
    if args.store is not None:
        return store_requests(args.store, args.split, args.lang, args.n)
    lang = check_lang(args.lang)
    if args.text is not None:
        texts, where = list(args.text), ["--text"] * len(args.text)
    else:
        path = Path(args.input)
        if not path.is_file():
            raise GenerateError(f"--input {path} does not exist")
        lines = path.read_text(encoding="utf-8").splitlines()
        texts = [line.strip() for line in lines if line.strip()]
        where = [f"{path} line {i + 1}" for i, line in enumerate(lines) if line.strip()]
        if not texts:
            raise GenerateError(f"--input {path} holds no sentence (only blank lines)")
    texts = [check_text(text, origin) for text, origin in zip(texts, where)]
    return [Request(f"{i:03d}_{lang}", t, lang, args.fps) for i, t in enumerate(texts)]


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # loaded first: the checkpoint registers the sign languages its corpus declared (e.g. ISO 639-3 "ase")
    stage = LMStage.from_checkpoint(args.ckpt, tokenizer_ckpt=args.tokenizer).to(device)
    requests = read_requests(args)
    prompts = build_prompts(stage, requests, args.dictionary, ckpt=args.ckpt, **retrieval_overrides(args))
    check_lengths(stage, requests, prompts)
    overrides = {"do_sample": args.sample, "temperature": args.temperature}
    if args.max_codes is not None:
        overrides["max_codes"] = args.max_codes
    if args.precision is not None:
        overrides["precision"] = args.precision
    if args.compile is not None:
        overrides["compile"] = args.compile
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.sample else None
    if generator is not None:
        overrides["generator"] = generator
    if stage.feature_layout.is_keypoints:
        return _run_keypoints(args, stage, requests, prompts, overrides)
    predictions = generate(stage, requests, prompts, args.batch_size, **overrides)
    writer = PredictionWriter(args.out, formats=args.formats, backend=stage.hparams.joint_backend)
    writer.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{'name':<28}{'lang':<6}{'codes':>6}{'frames':>8}  files / text")
    for p, codes, finished in predictions:
        paths = writer.write(p)
        if args.mp4:
            paths.append(_write_mp4(writer, p))
        stop = "" if finished else " (hit max_codes)"
        print(f"{p.name:<28}{p.lang:<6}{codes:>6}{p.raw.shape[0]:>8}  {', '.join(str(x) for x in paths)}{stop}")
        print(f"{'':<48}{p.text}")
    print(f"wrote {len(predictions)} sentence(s) to {args.out}")
    return 0


def _run_keypoints(args, stage, requests, prompts, overrides) -> int:
    layout = stage.feature_layout
    formats = [f for f in args.formats if f != "bvh"]
    if len(formats) != len(args.formats):
        print(f"soke generate: bvh does not apply to keypoint layout {layout.name!r}; skipped", file=sys.stderr)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"{'name':<28}{'lang':<6}{'codes':>6}{'frames':>8}  files / text")
    motions = generate_keypoints(stage, requests, prompts, args.batch_size, **overrides)
    for m in motions:
        paths = write_keypoint_outputs(args.out, m, layout, formats)
        stop = "" if m.finished else " (hit max_codes)"
        print(f"{m.name:<28}{m.lang:<6}{m.codes:>6}{len(m.points):>8}  {', '.join(str(x) for x in paths)}{stop}")
        print(f"{'':<48}{m.text}")
    print(f"wrote {len(motions)} sentence(s) to {args.out} (keypoint layout {layout.name!r})")
    return 0


def _write_mp4(writer, prediction) -> Path:
    backend = writer.backend
    with torch.no_grad():
        sequences = [backend(torch.from_numpy(prediction.raw)).numpy()]
        titles = ["prediction"]
        if prediction.reference_raw is not None:
            sequences.insert(0, backend(torch.from_numpy(prediction.reference_raw)).numpy())
            titles.insert(0, "ground truth")
    return render_animation(sequences, backend.bones, writer.out_dir / f"{safe_stem(prediction.name)}.mp4",
                            titles=titles, caption=f"[{prediction.lang}] {prediction.text}", fps=prediction.fps,
                            joint_sets=backend.joint_sets)
