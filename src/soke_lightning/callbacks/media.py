"""Validation media: a few samples rendered to skeleton GIFs and logged, plus a table of texts and clips.

:class:`ValidationMedia` keeps the first ``num_samples`` validation samples of an epoch (rank zero, first
dataloader), asks the stage for the sequences to show, renders them side by side with
:func:`soke_lightning.render.render_animation` into ``OUT_DIR/step<S>/<i>_<name>.gif`` (files first: ``wandb.Video``
needs a file path unless moviepy is installed) and logs them through every configured logger:

* ``WandbLogger``: ``val/media/<i>`` videos and a ``val/media_table`` table (name, language, text, clip);
* ``TensorBoardLogger``: a Markdown text ``val/media`` listing the files (videos there need moviepy);
* any logger: one JSON line per clip in ``OUT_DIR/media.jsonl`` (step, epoch, name, lang, text, path).

What is shown comes from the stage:

* a LightningModule with ``media_samples(batch, k) -> list[MediaSample]`` decides itself (stage 2: generated
  clips next to the ground truth);
* a module with ``generate(prompts, langs) -> (features, lengths, ...)`` and a ``tokenizer`` (stage 2,
  :class:`~soke_lightning.training.lm_stage.LMStage`) gets ground truth | generated (prompt: ``batch.prompt`` or the
  text);
* a module with a ``tokenizer`` only (stage 1, :class:`~soke_lightning.training.tokenizer_stage.TokenizerStage`)
  gets ground truth | reconstruction through ``tokenizer(poses, lengths)`` and ``tokenizer.normalizer``.

Joints come from the stage's ``backend`` (its forward-kinematics backend) or the builtin skeleton.

Also here: the resolved LightningCLI config is logged to wandb (``config`` in the run's config) from the
``config.yaml`` that LightningCLI's SaveConfigCallback writes into the log directory, when that file exists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from soke_lightning.callbacks.prediction_writer import safe_stem
from soke_lightning.core.batch import SignBatch
from soke_lightning.core.languages import get_corpus
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render import render_animation

log = logging.getLogger(__name__)


@dataclass
class MediaSample:
    """One clip to log.

    Attributes:
        name: sample key (``corpus/name``).
        text: the sentence.
        lang: language key.
        sequences: denormalised 133-d features per panel, each [T_i, 133] (CPU).
        titles: one title per panel ("ground truth", "reconstruction", "generated", ...).
        fps: frame rate.
    """

    name: str
    text: str
    lang: str
    sequences: list[torch.Tensor]
    titles: list[str]
    fps: float = 25.0


def _fps(corpus_name: str) -> float:
    try:
        corpus = get_corpus(corpus_name)
        return float(corpus.fps_cap or corpus.fps)
    except (KeyError, ValueError):
        return 25.0


def tokenizer_media(pl_module: LightningModule, batch: SignBatch, k: int) -> list[MediaSample]:
    """Ground truth | reconstruction of the first ``k`` samples of ``batch`` through ``pl_module.tokenizer``."""
    tokenizer = pl_module.tokenizer
    poses, lengths = batch.poses[:k], batch.lengths[:k]
    with torch.no_grad():
        recon = tokenizer(poses, lengths).recon
    norm = tokenizer.normalizer
    out = []
    for i in range(len(lengths)):
        n = int(lengths[i])
        gt, rec = norm.denormalize(poses[i, :n]), norm.denormalize(recon[i, :n])
        out.append(MediaSample(name=batch.keys[i], text=batch.text[i], lang=batch.lang[i],
                               sequences=[gt.float().cpu(), rec.float().cpu()],
                               titles=["ground truth", "reconstruction"], fps=_fps(batch.corpus[i])))
    return out


def generation_media(pl_module: LightningModule, batch: SignBatch, k: int) -> list[MediaSample]:
    """Ground truth | generated motion of the first ``k`` samples through ``pl_module.generate(prompts, langs)``."""
    prompts = list(batch.prompt if batch.prompt is not None else batch.text)[:k]
    langs = list(batch.lang)[:k]
    with torch.no_grad():
        feats, lengths = pl_module.generate(prompts, langs)[:2]
    norm = pl_module.tokenizer.normalizer
    out = []
    for i in range(len(langs)):
        n = int(batch.lengths[i])
        gt = norm.denormalize(batch.poses[i, :n])
        gen = feats[i, : max(1, int(lengths[i]))]
        out.append(MediaSample(name=batch.keys[i], text=batch.text[i], lang=batch.lang[i],
                               sequences=[gt.float().cpu(), gen.float().cpu()],
                               titles=["ground truth", "generated"], fps=_fps(batch.corpus[i])))
    return out


class ValidationMedia(Callback):
    """Render and log ``num_samples`` validation clips every ``every_n_validations`` validations (rank zero).

    Args:
        num_samples: clips per validation (the first samples of the validation set, in loader order).
        every_n_validations: render at every n-th validation run (rendering costs about a second per clip).
        out_dir: where the GIFs go; default ``<trainer.default_root_dir>/media``.
        max_frames: clips are cut to this many frames (keeps the files and the time small).
        height: pixel height of a panel.
        log_config: log the resolved LightningCLI config (``<log_dir>/config.yaml``) to wandb at fit start.
    """

    def __init__(self, num_samples: int = 3, every_n_validations: int = 1, out_dir: str | None = None,
                 max_frames: int = 160, height: int = 240, log_config: bool = True):
        super().__init__()
        if num_samples <= 0 or every_n_validations <= 0 or max_frames <= 0:
            raise ValueError(f"ValidationMedia: num_samples, every_n_validations and max_frames must be positive, "
                             f"got {num_samples}, {every_n_validations}, {max_frames}")
        self.num_samples = num_samples
        self.every_n_validations = every_n_validations
        self.out_dir = out_dir
        self.max_frames = max_frames
        self.height = height
        self.log_config = log_config
        self._validations = 0
        self._samples: list[MediaSample] = []
        self.logged: list[dict] = []  # what the last validation logged (name, path, ...): for tests and tools

    # ------------------------------------------------------------------------------------------- config
    @rank_zero_only
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.log_config or trainer.log_dir is None:
            return
        path = Path(trainer.log_dir) / "config.yaml"
        if not path.is_file():
            return
        import yaml

        config = yaml.safe_load(path.read_text())
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update({"config": config}, allow_val_change=True)

    # ------------------------------------------------------------------------------------------- collection
    def _active(self, trainer: Trainer) -> bool:
        return (trainer.is_global_zero and not trainer.sanity_checking
                and self._validations % self.every_n_validations == 0)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._samples = []

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        missing = self.num_samples - len(self._samples)
        if missing <= 0 or dataloader_idx != 0 or not self._active(trainer) or not isinstance(batch, SignBatch):
            return
        if hasattr(pl_module, "media_samples"):
            self._samples += list(pl_module.media_samples(batch, missing))[:missing]
        elif hasattr(pl_module, "generate") and hasattr(pl_module, "tokenizer"):
            self._samples += generation_media(pl_module, batch, missing)
        elif hasattr(pl_module, "tokenizer"):
            self._samples += tokenizer_media(pl_module, batch, missing)
        elif batch_idx == 0:
            log.warning("ValidationMedia: %s has neither media_samples(batch, k), generate(prompts, langs) nor a "
                        "tokenizer; nothing to show",
                        type(pl_module).__name__)

    # ------------------------------------------------------------------------------------------- rendering
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        active = self._active(trainer)
        self._validations += 1
        if not active or not self._samples:
            return
        self.logged = self._render(trainer, pl_module)
        self._log(trainer, self.logged)
        self._samples = []

    def _render(self, trainer: Trainer, pl_module: LightningModule) -> list[dict]:
        backend = getattr(pl_module, "backend", None) or get_joint_backend("builtin")
        layout = getattr(getattr(pl_module, "tokenizer", None), "feature_layout", None)
        keypoints = layout is not None and layout.is_keypoints  # points drawn as they are, no kinematics
        bones = layout.connections if keypoints else backend.bones
        joint_sets = layout.joint_sets() if keypoints else backend.joint_sets
        root = Path(self.out_dir or Path(trainer.default_root_dir) / "media")
        folder = root / f"step{trainer.global_step:07d}"
        records = []
        for i, sample in enumerate(self._samples):
            with torch.no_grad():
                if keypoints:
                    joints = [layout.points_of(seq[: self.max_frames].float().cpu()).numpy()
                              for seq in sample.sequences]
                else:
                    joints = [backend.from_features(seq[: self.max_frames].to(_device(backend))).cpu().numpy()
                              for seq in sample.sequences]
            path = render_animation(joints, bones, folder / f"{i}_{safe_stem(sample.name)}.gif",
                                    titles=sample.titles, caption=sample.text, fps=sample.fps,
                                    joint_sets=joint_sets, height=self.height)
            records.append({"step": trainer.global_step, "epoch": trainer.current_epoch, "index": i,
                            "name": sample.name, "lang": sample.lang, "text": sample.text, "path": str(path),
                            "fps": sample.fps})
        with open(root / "media.jsonl", "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        log.info("ValidationMedia: %d clips in %s", len(records), folder)
        return records

    def _log(self, trainer: Trainer, records: list[dict]) -> None:
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                for r in records:
                    logger.log_video(f"val/media/{r['index']}", [r["path"]], caption=[f"[{r['lang']}] {r['text']}"],
                                     format=["gif"])
                logger.log_table("val/media_table", columns=["step", "name", "lang", "text", "clip"],
                                 data=[[step, r["name"], r["lang"], r["text"], wandb.Video(r["path"], format="gif")]
                                       for r in records])
            elif isinstance(logger, TensorBoardLogger):
                lines = ["| name | lang | text | file |", "|---|---|---|---|"]
                lines += [f"| {r['name']} | {r['lang']} | {r['text']} | {r['path']} |" for r in records]
                logger.experiment.add_text("val/media", "\n".join(lines), global_step=step)


def _device(module: torch.nn.Module) -> torch.device:
    tensor = next(iter(module.buffers()), None)
    if tensor is None:
        tensor = next(iter(module.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
