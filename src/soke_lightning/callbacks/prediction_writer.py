"""Write predicted motion to files, one per sample and format: SMPL-X .npz, .pose, BVH and GIF (rank-aware).

A stage's ``predict_step`` returns a list of :class:`MotionPrediction`; :class:`PredictionWriter` turns each into
``OUT_DIR/<name>.npz``, ``.pose``, ``.bvh`` and/or ``.gif`` (see :mod:`soke_lightning.render.exports`) and appends one
JSON line per sample to ``OUT_DIR/index.rank<R>.jsonl`` (name, file stem, text, language, frames, fps, files).

    trainer:
      callbacks:
        - class_path: soke_lightning.callbacks.PredictionWriter
          init_args: {out_dir: outputs/predictions, formats: [npz, pose, bvh, gif]}

Rank awareness: every rank writes the samples it predicted and nothing else; a name a rank has already written is
skipped (repeated samples, e.g. from a padding sampler). File names are the sample names made safe for a file
system; a name that had to be changed gets a short hash of the original appended, so two different names never
share a file, whichever ranks write them. At the end rank zero logs how many samples were written (unique names
over all ranks).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from soke_lightning.core.io import safe_stem
from soke_lightning.core.types import MotionPrediction
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render import exports
from soke_lightning.render.animation import render_animation

log = logging.getLogger(__name__)

#: Formats the writer knows, with their file suffixes.
FORMATS: dict[str, str] = {"npz": ".npz", "pose": ".pose", "bvh": ".bvh", "gif": ".gif"}


def _flatten(outputs) -> Iterable[MotionPrediction]:
    """MotionPrediction objects of a predict_step output, a batch list or per-dataloader lists of those."""
    if isinstance(outputs, MotionPrediction):
        yield outputs
    elif isinstance(outputs, (list, tuple)):
        for item in outputs:
            yield from _flatten(item)
    else:
        raise TypeError(f"PredictionWriter expects predict_step to return MotionPrediction objects (or a list of "
                        f"them), got {type(outputs).__name__}")



class PredictionWriter(BasePredictionWriter):
    """Write each :class:`MotionPrediction` of ``trainer.predict`` to files (one per sample and format).

    Args:
        out_dir: destination folder (created).
        formats: any of "npz" (SMPL-X parameters + joints), "pose" (pose-format), "bvh" (builtin skeleton only),
            "gif" (skeleton animation; ground truth | prediction when the reference is present).
        backend: joint backend for joints, .pose, BVH and GIF ("builtin" or "smplx"; BVH needs "builtin").
        backend_kwargs: options of that backend (e.g. the SMPL-X model folder of the smplx backend).
        write_interval: "batch" (write as predictions arrive; default) or "epoch" (write all at the end; needs
            ``trainer.predict(..., return_predictions=True)``).
        gif_height: pixel height of GIF panels.
        bvh_unit: "cm" or "m" for BVH offsets and positions.
    """

    def __init__(self, out_dir: str | Path, formats: Sequence[str] = ("npz", "pose"), backend: str = "builtin",
                 write_interval: Literal["batch", "epoch"] = "batch", gif_height: int = 300,
                 bvh_unit: Literal["cm", "m"] = "cm", backend_kwargs: dict[str, Any] | None = None):
        if write_interval not in ("batch", "epoch"):
            raise ValueError(f"PredictionWriter: write_interval must be 'batch' or 'epoch', got {write_interval!r}")
        super().__init__(write_interval)
        formats = list(formats)
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats or len(set(formats)) != len(formats):
            raise ValueError(f"PredictionWriter: formats must be distinct names from {list(FORMATS)}, got {formats}")
        if "bvh" in formats and backend != "builtin":
            raise ValueError(f"PredictionWriter: 'bvh' needs backend='builtin' (its skeleton tree), got "
                             f"backend={backend!r}; drop 'bvh' from formats or use the builtin backend")
        self.out_dir = Path(out_dir)
        self.formats = formats
        self.backend_name = backend
        self.backend_kwargs = dict(backend_kwargs or {})
        self.gif_height = gif_height
        self.bvh_unit = bvh_unit
        self._backend = None
        self._written: dict[str, str] = {}  # stem -> name, this rank, this run
        self._skipped = 0
        self._rank = 0

    @property
    def backend(self):
        """The joint backend (built on first use, on the CPU)."""
        if self._backend is None:
            self._backend = get_joint_backend(self.backend_name, **self.backend_kwargs)
        return self._backend

    def on_predict_start(self, trainer, pl_module) -> None:
        self._written, self._skipped, self._rank = {}, 0, trainer.global_rank
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._index_path.unlink(missing_ok=True)  # this run's index replaces an earlier run's

    @property
    def _index_path(self) -> Path:
        return self.out_dir / f"index.rank{self._rank}.jsonl"

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        self.write(prediction)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if not predictions:
            raise RuntimeError("PredictionWriter(write_interval='epoch') got no predictions: call "
                               "trainer.predict(..., return_predictions=True) or use write_interval='batch'")
        self.write(predictions)  # one list of batch outputs, or one such list per dataloader: flattened

    def on_predict_end(self, trainer, pl_module) -> None:
        names = set(self._written.values())
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, sorted(names))
            names = set().union(*map(set, gathered))
        rank_zero_info(f"PredictionWriter: {len(names)} samples written to {self.out_dir} as {self.formats}")

    def write(self, outputs) -> list[Path]:
        """Write predictions: a :class:`MotionPrediction` or (nested) lists of them; returns the files written."""
        paths: list[Path] = []
        for sample in _flatten(outputs):
            stem = safe_stem(sample.name)
            if stem in self._written:
                self._skipped += 1
                log.debug("rank %d: %r already written, skipped", self._rank, sample.name)
                continue
            written = self._write_sample(sample, stem)
            self._written[stem] = sample.name
            paths += written
        return paths

    def _write_sample(self, sample: MotionPrediction, stem: str) -> list[Path]:
        backend = self.backend
        with torch.no_grad():
            joints = backend(torch.from_numpy(sample.raw)).numpy()
        base = self.out_dir / stem
        paths = []
        for fmt in self.formats:
            path = base.with_name(stem + FORMATS[fmt])
            if fmt == "npz":
                exports.export_smplx_npz(path, sample.raw, joints=joints, joint_names=backend.joint_names,
                                         fps=sample.fps, text=sample.text, lang=sample.lang, name=sample.name)
            elif fmt == "pose":
                exports.export_pose(path, joints, joint_sets=backend.joint_sets, joint_names=backend.joint_names,
                                    fps=sample.fps)
            elif fmt == "bvh":
                exports.export_bvh(path, sample.raw, backend, fps=sample.fps, unit=self.bvh_unit)
            else:
                path = self._write_gif(path, sample, joints)
            paths.append(path)
        with self._index_path.open("a", encoding="utf-8") as index:
            index.write(json.dumps({"name": sample.name, "stem": stem, "text": sample.text, "lang": sample.lang,
                                    "corpus": sample.corpus, "frames": int(sample.raw.shape[0]), "fps": sample.fps,
                                    "files": [p.name for p in paths]}, ensure_ascii=False) + "\n")
        log.debug("rank %d wrote %s", self._rank, [str(p) for p in paths])
        return paths

    def _write_gif(self, path: Path, sample: MotionPrediction, joints: np.ndarray) -> Path:
        sequences, titles = [joints], ["prediction"]
        if sample.reference_raw is not None:
            with torch.no_grad():
                reference = self.backend(torch.from_numpy(sample.reference_raw)).numpy()
            sequences, titles = [reference, joints], ["ground truth", "prediction"]
        # Rendered under a temporary name and renamed, like the other formats (readers never see half a GIF).
        partial = path.with_name(f".{path.stem}.rank{self._rank}.partial.gif")
        render_animation(sequences, self.backend.bones, partial, titles=titles, caption=f"[{sample.lang}] {sample.text}",
                         fps=sample.fps, joint_sets=self.backend.joint_sets, height=self.gif_height)
        os.replace(partial, path)
        return path

    @property
    def num_written(self) -> int:
        """Samples this rank wrote in the current/last run."""
        return len(self._written)

    @property
    def num_skipped(self) -> int:
        """Repeated samples this rank skipped in the current/last run."""
        return self._skipped


__all__ = ["FORMATS", "MotionPrediction", "PredictionWriter", "safe_stem"]
