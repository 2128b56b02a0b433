"""Back-translation stage (LightningModule): trains the sign -> text judge that scores generated motion (B-T BLEU).

SOKE judges generated signing by translating it back to text with a model trained on ground-truth motion, then
scoring the text against the sentence that was signed (docs/evaluation.md). :class:`BackTranslationStage` trains a
:class:`~soke_lightning.models.backtranslation.BackTranslator` with teacher-forced cross-entropy on (motion, text)
pairs of the training split; validation / test decode greedily and log ``{val,test}/<lang>/bleu4`` (test:
bleu1..4, rouge_l) and the mean over languages ``{stage}/bleu4``. The text tokenizer (embedded BPE) is trained
in ``setup`` on the training sentences and travels in every checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

from soke_lightning.core.batch import SignBatch
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.metrics.bleu import BleuRougeStats
from soke_lightning.metrics.functional.bleu import SCORES
from soke_lightning.models.backtranslation import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEY,
    BackTranslationArchitecture,
    BackTranslationConfig,
    BackTranslator,
    build_translator,
)
from soke_lightning.models.text_tokenizer import TextTokenizer, tokenizer_files, tokenizer_from_files
from soke_lightning.training.common import EvalLoops, adamw_cosine

log = logging.getLogger(__name__)


class BackTranslationStage(EvalLoops, LightningModule):
    """Trains a :class:`BackTranslator` on ground-truth motion -> text pairs of a :class:`SignDataModule`.

    The text tokenizer (embedded BPE) is trained in ``setup`` on the DataModule's training sentences and the network
    is built for its vocabulary; both travel in every checkpoint.

    Args:
        architecture: the network's sizes and decoding rule (see
            :class:`~soke_lightning.models.backtranslation.BackTranslationArchitecture`); default: its defaults
            with ``no_repeat_ngram_size=3``.
        text_vocab_size: target size of the embedded BPE vocabulary.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up, then cosine to ``lr * min_lr_ratio`` over the estimated training steps.
        min_lr_ratio: final learning rate / ``lr``.
        label_smoothing: cross-entropy label smoothing.
        time_stretch: training augmentation: each motion is resampled in time by a factor drawn uniformly from
            ``[1 - time_stretch, 1 + time_stretch]`` (signing speed varies between signers; 0 = off).
        feature_noise: training augmentation: std of Gaussian noise added to the normalised features (0 = off).
        bow_weight: weight of an auxiliary bag-of-words loss on the encoder (0 = off): every encoder step is scored
            against the vocabulary with the tied output head, the maximum over time is the sentence's bag of tokens,
            and its log-softmax is matched to the sentence's token set. It makes the encoder spot each sign's word
            wherever it occurs (sign order differs from word order, so no monotone alignment is assumed).
        metric_languages: language keys scored separately (default: every registered language).
    """

    def __init__(
        self,
        architecture: BackTranslationArchitecture | None = None,
        text_vocab_size: int = 2000,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        min_lr_ratio: float = 0.05,
        label_smoothing: float = 0.1,
        time_stretch: float = 0.0,
        feature_noise: float = 0.0,
        bow_weight: float = 0.0,
        metric_languages: list[str] | None = None,
    ):
        super().__init__()
        if not 0.0 <= time_stretch < 1.0 or feature_noise < 0.0 or bow_weight < 0.0:
            raise ValueError(f"BackTranslationStage: time_stretch must be in [0, 1), feature_noise and bow_weight "
                             f">= 0, got {time_stretch}, {feature_noise}, {bow_weight}")
        self.architecture = architecture or BackTranslationArchitecture(no_repeat_ngram_size=3)
        self.save_hyperparameters()
        self.translator: BackTranslator | None = None
        self.metric_languages = list(metric_languages or LANGUAGES)
        self.scores = nn.ModuleDict({s: BleuRougeStats(self.metric_languages) for s in ("val", "test")})

    def model_kwargs(self, text_tokenizer: TextTokenizer) -> dict:
        config = BackTranslationConfig(**asdict(self.architecture), vocab_size=len(text_tokenizer),
                                       pad_id=text_tokenizer.pad_token_id, eos_id=text_tokenizer.eos_token_id)
        return asdict(config)

    def setup(self, stage: str) -> None:
        """fit: train the text tokenizer on the training sentences, build the network, copy the data statistics."""
        if self.translator is not None or stage != "fit":
            return
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "texts") or not hasattr(dm, "normalizer"):
            raise ValueError("BackTranslationStage needs a SignDataModule (its training sentences train the text "
                             "tokenizer and its normalisation statistics are stored in the model)")
        files = None
        if self.trainer.is_global_zero:
            files = tokenizer_files(TextTokenizer.train(dm.texts("train"), vocab_size=self.hparams.text_vocab_size))
        files = self.trainer.strategy.broadcast(files, src=0)
        tokenizer_source = f"embedded BPE trained on the {len(dm.texts('train'))} training texts"
        text_tokenizer = tokenizer_from_files(files, tokenizer_source)
        self._install({"format": CHECKPOINT_FORMAT, "model": self.model_kwargs(text_tokenizer),
                       "text_tokenizer": files})
        self.translator.normalizer.mean.copy_(dm.normalizer.mean)
        self.translator.normalizer.std.copy_(dm.normalizer.std)
        log.info("back-translation model: %d parameters, text vocabulary %d",
                 sum(p.numel() for p in self.translator.parameters()), len(text_tokenizer))

    def _install(self, entry: dict) -> None:
        self.translator = build_translator(entry, "a back-translation checkpoint").to(self.device)
        self._entry = entry

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self._entry

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        entry = checkpoint.get(CHECKPOINT_KEY)
        if entry is None or entry.get("format") != CHECKPOINT_FORMAT:
            raise KeyError(f"not a back-translation checkpoint: no {CHECKPOINT_KEY!r} entry of format "
                           f"{CHECKPOINT_FORMAT}")
        if self.translator is None:
            self._install(entry)

    def _require_model(self) -> None:
        if self.translator is None:
            raise RuntimeError("BackTranslationStage: no trained model; validate/test need --ckpt_path CKPT")

    def on_validation_start(self) -> None:
        self._require_model()

    def on_test_start(self) -> None:
        self._require_model()

    # ------------------------------------------------------------------------------------------------ steps
    def targets(self, texts: Sequence[str], langs: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder input [B, S] = code + subwords, labels [B, S] = subwords + </s>, -100 on padding)."""
        tok = self.translator.text_tokenizer
        limit = self.translator.model.config.max_text_length
        pieces = tok.hf(list(texts), add_special_tokens=False)["input_ids"]
        starts = self.translator.start_ids(langs).tolist()
        rows = [p[: limit - 1] for p in pieces]
        width = max(len(r) for r in rows) + 1
        inp = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (row, start) in enumerate(zip(rows, starts)):
            inp[i, : len(row) + 1] = torch.tensor([start, *row])
            lab[i, : len(row) + 1] = torch.tensor([*row, tok.eos_token_id])
        return inp.to(self.device), lab.to(self.device)

    def augment(self, poses: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training augmentation (time stretch per sample, feature noise) of normalised poses [B, T, 133].

        Returns:
            (poses [B, T', 133] zero-padded, lengths [B]); the input itself when both augmentations are off.
        """
        hp = self.hparams
        if hp.time_stretch > 0:
            factors = 1.0 + hp.time_stretch * (2.0 * torch.rand(len(lengths)) - 1.0)
            new = (lengths.cpu().float() * factors).round().long().clamp_min(2)
            out = poses.new_zeros(len(lengths), int(new.max()), poses.shape[-1])
            for i, (t, n) in enumerate(zip(lengths.tolist(), new.tolist())):
                seq = poses[i, :t].transpose(0, 1)[None]
                out[i, :n] = F.interpolate(seq, size=n, mode="linear", align_corners=True)[0].transpose(0, 1)
            poses, lengths = out, new.to(lengths.device)
        if hp.feature_noise > 0:
            poses = poses + hp.feature_noise * torch.randn_like(poses)
        return poses, lengths

    def _loss(self, batch: SignBatch, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(teacher-forced cross-entropy, bag-of-words loss or None when ``bow_weight`` is 0)."""
        model = self.translator.model
        inp, lab = self.targets(batch.text, batch.lang)
        poses, lengths = self.augment(batch.poses, batch.lengths) if augment else (batch.poses, batch.lengths)
        memory, pad = model.encode(poses, lengths)
        logits = model.decode(inp, memory, pad)
        ce = F.cross_entropy(logits.flatten(0, 1), lab.flatten(), ignore_index=-100,
                             label_smoothing=self.hparams.label_smoothing)
        if self.hparams.bow_weight <= 0:
            return ce, None
        bag = model.head(memory).masked_fill(pad[..., None], torch.finfo(memory.dtype).min).amax(1)  # [B, V]
        c = model.config
        target = torch.zeros_like(bag).scatter_(1, lab.masked_fill(lab < 0, c.pad_id), 1.0)
        target[:, [c.pad_id, c.eos_id]] = 0.0
        target = target / target.sum(1, keepdim=True).clamp_min(1.0)
        return ce, -(target * F.log_softmax(bag, dim=-1)).sum(1).mean()

    def training_step(self, batch: SignBatch, batch_idx: int) -> torch.Tensor:
        loss, bow = self._loss(batch, augment=True)
        if bow is not None:
            self.log("train/bow_loss", bow, batch_size=len(batch))
            loss = loss + self.hparams.bow_weight * bow
        self.log("train/loss", loss, batch_size=len(batch))
        self.log("loss", loss, batch_size=len(batch), prog_bar=True, logger=False)
        return loss

    def _eval_step(self, batch: SignBatch, stage: str) -> None:
        self.log(f"{stage}/loss", self._loss(batch)[0], batch_size=len(batch), sync_dist=True)
        hyps = self.translator.translate(batch.poses, batch.lengths, batch.lang)
        self.scores[stage].update(hyps, batch.text, batch.lang)

    def _eval_epoch_end(self, stage: str) -> None:
        values = self.scores[stage].compute()
        self.scores[stage].reset()
        names = SCORES if stage == "test" else ("bleu4",)
        logs = {f"{stage}/{lang}/{name}": v[name] for lang, v in values.items() for name in names}
        if values:
            for name in names:
                logs[f"{stage}/{name}"] = float(np.mean([v[name] for v in values.values()]))
        self.log_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in logs.items()}, sync_dist=False)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_cosine(self.translator.parameters(), self.trainer, lr=hp.lr, weight_decay=hp.weight_decay,
                            warmup_steps=hp.warmup_steps, min_lr=hp.min_lr_ratio * hp.lr)
