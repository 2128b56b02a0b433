"""`soke render`: draw samples of a packed store as skeleton animations, captioned with their text.

Examples::

    soke render data/synthsign-demo --split test --n 3 --out outputs/render
    soke render STORE --split val --lang csl --n 2 --format mp4 --side-view --out outputs/render
    soke render STORE --names S000286_P0000_T00 --format png --out outputs/render   # contact sheet
    soke render STORE --backend smplx --smplx-dir ~/models/smplx --out outputs/render   # real SMPL-X joints

A store of a keypoint feature layout (``soke prepare --corpus pose``) is drawn from its points and the layout's
connections (no kinematics; --backend does not apply); a missing point is drawn where it was last seen.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from soke_lightning.core.io import safe_stem
from soke_lightning.core.languages import get_language
from soke_lightning.data.store import StoreError, open_store
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render.animation import render_animation, render_still
from soke_lightning.render.keypoints import drawable_points

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="packed store folder (written by `soke prepare` or `soke synth`)")
    parser.add_argument("--split", default="test", help="split to read (default: test)")
    parser.add_argument("--n", type=int, default=3, help="number of samples (the first N that match; default 3)")
    parser.add_argument("--lang", default=None, help="only samples of this language key (asl, csl, dgs)")
    parser.add_argument("--names", nargs="+", default=None, help="render exactly these sample names")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=("gif", "mp4", "png"), default="gif",
                        help="gif / mp4 animation, or png contact sheet (default gif)")
    parser.add_argument("--fps", type=float, default=None, help="playback rate (default: the sample's fps)")
    parser.add_argument("--side-view", action="store_true", help="add a side view to each panel")
    parser.add_argument("--height", type=int, default=360, help="front-view height in pixels (default 360)")
    parser.add_argument("--backend", choices=("builtin", "smplx"), default="builtin",
                        help="forward kinematics: the built-in skeleton (default) or SMPL-X (needs its model files)")
    parser.add_argument("--smplx-dir", default=None,
                        help="folder with SMPLX_NEUTRAL.npz for --backend smplx (default: $SOKE_SMPLX_DIR)")
    parser.add_argument("--hand-mean", choices=("relaxed", "flat"), default="relaxed",
                        help="builtin backend: hand parameters are offsets from a relaxed mean hand (SOKE, default) "
                             "or absolute")


def select_indices(split, n: int, lang: str | None, names: list[str] | None) -> list[int]:
    """Indices of the samples to render: ``names`` in order, else the first ``n`` (of ``lang`` if given)."""
    if names:
        return [split.index_of(name) for name in names]
    langs = split.langs
    chosen = [i for i in range(len(split)) if lang is None or langs[i] == lang][:max(0, n)]
    if not chosen:
        have = sorted(set(langs))
        raise StoreError(f"split {split.name!r} of {split.root}: no samples with lang={lang!r}; it has {have}")
    return chosen


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    store = open_store(args.store)  # registers the sign languages a keypoint corpus declares
    if args.lang is not None:
        get_language(args.lang)  # fails with the list of valid keys
    split = store.split(args.split)
    indices = select_indices(split, args.n, args.lang, args.names)
    layout = store.layout
    if layout.is_keypoints:
        bones, joint_sets = layout.connections, layout.joint_sets()
    elif args.backend == "smplx":
        backend = get_joint_backend("smplx", model_dir=args.smplx_dir)
    else:
        backend = get_joint_backend("builtin", hand_mean=args.hand_mean)
    if not layout.is_keypoints:
        bones, joint_sets = backend.bones, backend.joint_sets
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in tqdm(indices, desc="soke render", unit="sample", disable=len(indices) < 2):
        sample = split[i]
        if layout.is_keypoints:
            visible = layout.point_mask(layout.feature_mask(sample.frames))
            joints = drawable_points(layout.points_of(layout.features(sample.frames)), visible, layout)
        else:
            with torch.no_grad():
                joints = backend(torch.from_numpy(sample.frames.astype("float32"))).numpy()
        title = f"{sample.name}  ({sample.lang}, {sample.num_frames} frames @ {sample.fps:g} fps)"
        stem = out_dir / f"{args.split}_{safe_stem(sample.name)}"
        common = dict(titles=[title], caption=sample.text, joint_sets=joint_sets, side_view=args.side_view)
        if args.format == "png":
            path = render_still([joints], bones, stem.with_suffix(".png"), height=args.height, **common)
        else:
            path = render_animation([joints], bones, stem.with_suffix(f".{args.format}"),
                                    fps=args.fps or sample.fps, height=args.height, **common)
        print(path)
    return 0
