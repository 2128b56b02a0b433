"""`soke encode`: export every sample's tokenizer codes ([L, 3], L = T / 4) into a token cache for stage 2.

    soke encode --tokenizer outputs/stage1-demo/checkpoints/last.ckpt --data datamodules/synthsign.yaml \\
                --out outputs/tokens-demo [--splits train val test dictionary] [--set init_args.stores=[DIR]]

Samples go through the DataModule's own temporal processing (fps cap, 40..400 frames, multiple of 4), so the
codes line up with the motion the tokenizer was trained on and L = T / 4. The split names are the DataModule's
(train/val/test map to its train_split/val_split/test_split); "dictionary" is encoded when the stores have it.
The cache records the tokenizer's hash (:func:`soke_lightning.models.tokenizer.tokenizer_hash`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_SPLITS = ("train", "val", "test", "dictionary")


def build_datamodule(config: str, overrides: list[str] | None = None):
    """Instantiate the DataModule of a datamodule YAML (class_path/init_args), as LightningCLI would."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    args = ["--data", config]
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. init_args.stores=[data/synthsign-demo]")
        args += [f"--data.{key}", value]
    cfg = parser.parse_args(args)
    return parser.instantiate_classes(cfg).data


def _datasets(dm, splits: list[str]) -> dict:
    from soke_lightning.data.datamodule import SignDataset
    from soke_lightning.data.store import open_store

    out = {}
    stores = [open_store(path) for path in dm.stores]
    for split in splits:
        store_split = dm.split_names.get(split, split)
        present = [s.split(store_split) for s in stores if store_split in s]
        if not present:
            if split in DEFAULT_SPLITS:
                log.info("no split %r in %s: skipped", store_split, dm.stores)
                continue
            raise ValueError(f"split {store_split!r} is in none of the stores {dm.stores}")
        out[split] = SignDataset(present, normalizer=dm.normalizer, processing=dm.processing,
                                 languages=dm.language_filter)
    return out


def equal_length_batches(dataset, batch_size: int) -> list[list[int]]:
    """Batches of samples with the SAME processed length (in dataset order within a length).

    The encoder's receptive field reaches past a sequence's end, so codes near the end of a zero-padded sample
    would depend on what it was batched with; equal-length batches give exactly the codes of a batch of one.
    """
    by_length: dict[int, list[int]] = {}
    for i in range(len(dataset)):
        r = dataset.record(i)
        n = dataset.processing.output_length(int(r["length"]), float(r["fps"]), dataset.fps_cap(r["corpus"]))
        by_length.setdefault(n, []).append(i)
    return [ids[k:k + batch_size] for _, ids in sorted(by_length.items()) for k in range(0, len(ids), batch_size)]


@torch.no_grad()
def encode_dataset(tokenizer, dataset, batch_size: int, device: torch.device, renormalize=None,
                   desc: str = "") -> tuple[list[dict], list]:
    """Codes of every sample of a SignDataset: (records, [L_i, P] int arrays), grouped by processed length."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from soke_lightning.data.datamodule import collate

    records, codes = [], []
    loader = DataLoader(dataset, batch_sampler=equal_length_batches(dataset, batch_size), collate_fn=collate)
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        poses = batch.poses.to(device)
        if renormalize is not None:
            poses = renormalize(poses)
        out = tokenizer.encode(poses, batch.lengths.to(device)).cpu().numpy()
        steps = tokenizer.code_lengths(batch.lengths).tolist()
        for i in range(len(batch)):
            records.append({"key": batch.keys[i], "name": batch.name[i], "corpus": batch.corpus[i],
                            "lang": batch.lang[i], "frames": int(batch.lengths[i])})
            codes.append(out[i, : steps[i]])
    return records, codes


@torch.no_grad()
def render_previews(tokenizer, dataset, count: int, folder: Path, device: torch.device, renormalize=None) -> list:
    """Render the first ``count`` samples as ground truth | reconstruction (decoded codes) GIFs."""
    from soke_lightning.kinematics import get_joint_backend
    from soke_lightning.render.animation import render_animation

    backend = get_joint_backend("builtin")
    paths = []
    for i in range(min(count, len(dataset))):
        item = dataset[i]
        poses = item.poses[None].to(device)
        if renormalize is not None:
            poses = renormalize(poses)
        recon = tokenizer.decode(tokenizer.encode(poses))
        norm = tokenizer.normalizer
        joints = [backend.from_features(norm.denormalize(x)[0].cpu()) for x in (poses, recon)]
        name = f"{item.corpus}_{item.name}".replace("/", "_")
        paths.append(render_animation(joints, backend.bones, folder / f"{name}.gif",
                                      titles=["ground truth", "reconstruction"], caption=item.text, fps=item.fps,
                                      joint_sets=backend.joint_sets))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", required=True, help="tokenizer checkpoint (stage-1 .ckpt or import-official)")
    parser.add_argument("--data", required=True, help="datamodule YAML (class_path + init_args), e.g. "
                        "datamodules/synthsign.yaml")
    parser.add_argument("--out", required=True, help="token cache directory to write")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS),
                        help="splits to encode (default: train val test dictionary, those present)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a datamodule argument, e.g. --set init_args.stores=[data/synthsign-demo]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--preview", type=int, default=0, metavar="N",
                        help="also render N test samples as ground truth vs reconstruction GIFs (builtin skeleton)")
    parser.add_argument("--preview-out", default=None, help="folder of the preview GIFs (default: OUT/preview)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    from soke_lightning.data.token_cache import TokenCacheWriter
    from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash

    device = torch.device(args.device)
    tokenizer = SignTokenizer.from_checkpoint(args.tokenizer)
    digest = tokenizer_hash(tokenizer)
    tokenizer.to(device)
    dm = build_datamodule(args.data, args.set)
    renormalize = None
    theirs, ours = dm.normalizer, tokenizer.normalizer
    if not (torch.allclose(theirs.mean, ours.mean.cpu(), atol=1e-6) and torch.allclose(theirs.std, ours.std.cpu(), atol=1e-6)):
        log.warning("the datamodule's normalisation statistics differ from the tokenizer's; samples are "
                    "re-normalised with the tokenizer's statistics")
        theirs = theirs.to(device)

        def renormalize(x):
            return ours.normalize(theirs.denormalize(x))

    writer = TokenCacheWriter(args.out, digest, list(tokenizer.parts), tokenizer.codebook_sizes,
                              tokenizer.downsample_rate,
                              info={"tokenizer": str(Path(args.tokenizer).resolve()), "sources": list(dm.stores),
                                    "datamodule": str(args.data),
                                    "processing": {"min_len": dm.processing.min_len, "max_len": dm.processing.max_len,
                                                   "unit_len": dm.processing.unit_len,
                                                   "apply_fps_cap": dm.processing.apply_fps_cap}})
    for split, dataset in _datasets(dm, list(args.splits)).items():
        records, codes = encode_dataset(tokenizer, dataset, args.batch_size, device, renormalize, desc=split)
        writer.write_split(split, records, codes)
        steps = sum(len(c) for c in codes)
        print(f"{split:<11} {len(records):>6} samples {steps:>8} code steps")
    if args.preview > 0:
        folder = Path(args.preview_out or Path(args.out) / "preview")
        datasets = _datasets(dm, ["test"])
        for path in render_previews(tokenizer, datasets["test"], args.preview, folder, device, renormalize):
            print(f"preview {path}")
    print(f"wrote {args.out} (tokenizer hash {digest[:16]}..., parts {list(tokenizer.parts)}, "
          f"codebooks {tokenizer.codebook_sizes})")
    return 0
