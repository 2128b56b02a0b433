"""Encode a corpus with a trained tokenizer into a token cache for stage 2 (the pipeline behind `soke encode`).

Every sample's codes ([L, 3], L = T / 4) are written per split. Samples go through the DataModule's own temporal processing (fps cap, 40..400 frames, multiple of 4), so the
codes line up with the motion the tokenizer was trained on and L = T / 4. The split names are the DataModule's
(train/val/test map to its train_split/val_split/test_split); "dictionary" is encoded when the stores have it.
The cache records the tokenizer's hash (:func:`soke_lightning.models.tokenizer.tokenizer_hash`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from soke_lightning.core.feature_layout import check_same_layout
from soke_lightning.core.io import safe_stem
from soke_lightning.data.datamodule import split_datasets
from soke_lightning.data.encoding import encode_dataset
from soke_lightning.data.token_cache import TokenCacheWriter
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
from soke_lightning.render.animation import render_animation

log = logging.getLogger(__name__)


@torch.no_grad()
def render_previews(tokenizer, dataset, count: int, folder: Path, device: torch.device, renormalize=None) -> list:
    """Render the first ``count`` samples as ground truth | reconstruction (decoded codes) GIFs."""
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
        name = safe_stem(f"{item.corpus}_{item.name}")
        paths.append(render_animation(joints, backend.bones, folder / f"{name}.gif",
                                      titles=["ground truth", "reconstruction"], caption=item.text, fps=item.fps,
                                      joint_sets=backend.joint_sets))
    return paths


def renormalizer(dm, tokenizer: SignTokenizer, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """None when the DataModule normalises like the tokenizer, else a function mapping its features to the tokenizer's."""
    theirs, ours = dm.normalizer, tokenizer.normalizer
    if torch.allclose(theirs.mean, ours.mean.cpu(), atol=1e-6) and torch.allclose(theirs.std, ours.std.cpu(), atol=1e-6):
        return None
    log.warning("the datamodule's normalisation statistics differ from the tokenizer's; samples are "
                "re-normalised with the tokenizer's statistics")
    theirs = theirs.to(device)

    def renormalize(x: torch.Tensor) -> torch.Tensor:
        return ours.normalize(theirs.denormalize(x))

    return renormalize


@dataclass
class EncodeSummary:
    """What :func:`encode_to_cache` wrote.

    Attributes:
        out: the token cache folder.
        digest: the tokenizer's hash recorded in the cache.
        parts: the tokenizer's parts.
        codebook_sizes: codes per part.
        splits: split -> (samples, code steps).
        previews: preview GIF paths.
    """

    out: Path
    digest: str
    parts: list[str]
    codebook_sizes: dict[str, int]
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)
    previews: list[Path] = field(default_factory=list)


def encode_to_cache(tokenizer_ckpt: str | Path, dm, out: str | Path, *, splits: Sequence[str],
                    data_config: str | None = None, batch_size: int = 32,
                    device: str | torch.device = "cpu", preview: int = 0,
                    preview_out: str | Path | None = None) -> EncodeSummary:
    """Encode the DataModule's splits with a tokenizer checkpoint into a token cache at ``out``.

    Args:
        tokenizer_ckpt: stage-1 checkpoint (or an `import-official` one).
        dm: the :class:`~soke_lightning.data.datamodule.SignDataModule` whose stores are encoded.
        data_config: the YAML it was built from (recorded in the cache).
        out: token cache folder.
        splits: DataModule split names to encode (see :func:`soke_lightning.data.datamodule.split_datasets`).
        batch_size: samples per encoder batch.
        device: torch device.
        preview: render this many test samples as ground truth | reconstruction GIFs.
        preview_out: folder of the previews (default ``out/preview``).
    """
    device = torch.device(device)
    tokenizer = SignTokenizer.from_checkpoint(tokenizer_ckpt)
    check_same_layout(dm.feature_layout, f"the data {list(dm.stores)}", tokenizer.feature_layout,
                      f"the tokenizer {tokenizer_ckpt}")
    if preview > 0 and tokenizer.feature_layout.is_keypoints:
        raise ValueError(f"--preview draws through forward kinematics; the tokenizer's layout "
                         f"{tokenizer.feature_layout.name!r} is keypoints: use `soke render` on the store instead")
    digest = tokenizer_hash(tokenizer)
    tokenizer.to(device)
    renormalize = renormalizer(dm, tokenizer, device)
    writer = TokenCacheWriter(out, digest, list(tokenizer.parts), tokenizer.codebook_sizes,
                              tokenizer.downsample_rate,
                              info={"tokenizer": str(Path(tokenizer_ckpt).resolve()), "sources": list(dm.stores),
                                    "datamodule": str(data_config),
                                    "processing": {"min_len": dm.processing.min_len, "max_len": dm.processing.max_len,
                                                   "unit_len": dm.processing.unit_len,
                                                   "apply_fps_cap": dm.processing.apply_fps_cap}})
    summary = EncodeSummary(Path(out), digest, list(tokenizer.parts), dict(tokenizer.codebook_sizes))
    for split, dataset in split_datasets(dm, list(splits)).items():
        records, codes = encode_dataset(tokenizer, dataset, batch_size, device, renormalize, desc=split)
        writer.write_split(split, records, codes)
        summary.splits[split] = (len(records), sum(len(c) for c in codes))
    if preview > 0:
        folder = Path(preview_out or Path(out) / "preview")
        test = split_datasets(dm, ["test"])["test"]
        summary.previews = render_previews(tokenizer, test, preview, folder, device, renormalize)
    return summary
