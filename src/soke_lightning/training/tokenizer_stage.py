"""Stage 1 (DETO): train the sign tokenizer — reconstruction + commitment, AdamW + cosine, FK-based metrics.

Loss (docs/design.md §3.3): SmoothL1(beta=1) between the reassembled 133-d reconstruction and the input (normalised
space) + ``commit_weight`` x (sum of the part commitment losses) + optional ``velocity_weight`` x SmoothL1 of the
frame differences. Padded frames are excluded (``loss_padding="exclude"``); ``"reference"`` zeroes them in both and
averages over every element, padding included, like the reference.

Validation / test metrics (millimetres, per language and overall), computed on joints of the denormalised ground
truth and reconstruction through a forward-kinematics backend (:mod:`soke_lightning.kinematics`):
``mpjpe_body`` (12 body joints, pelvis-translated), ``mpjpe_pa_body`` (Procrustes fitted on the backend's
``body_align`` set, read on the body joints), ``mpjpe_hand`` (21 joints per hand, wrist-translated, mean of both
hands) and ``mpjpe_pa_hand`` (Procrustes on each hand). Per part: ``perplexity`` and ``usage`` (fraction of codes
used) of the epoch's code histogram. Keys: ``val/mpjpe_pa_hand``, ``val/asl/mpjpe_body``, ``val/body/usage``, ...

Keypoint feature layouts (e.g. ``holistic``) have no kinematics: the metrics are ``kpe_<part>`` (part-aligned) and
``kpe_abs_<part>`` on the points themselves, in the layout's unit (shoulder widths), see
:mod:`soke_lightning.metrics.functional.keypoints`. Missing ground-truth points (``SignBatch.feature_mask``) are left
out of the losses and of every error. The data's feature layout must be the tokenizer's (refused naming both).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric

from soke_lightning.core.batch import SignBatch
from soke_lightning.core.feature_layout import check_same_layout
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.data.normalization import Normalizer
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.alignment import translate_to_joint
from soke_lightning.metrics.functional.keypoints import keypoint_errors, keypoint_metric_names
from soke_lightning.metrics.functional.reconstruction import joint_errors
from soke_lightning.metrics.reconstruction import (
    JOINT_METRICS,
    CodeHistogram,
    GroupedFrameMean,
    GroupedPointMean,
)
from soke_lightning.models.tokenizer import CHECKPOINT_KEY, SignTokenizer
from soke_lightning.training.common import EvalLoops, adamw_cosine, compile_in_place

log = logging.getLogger(__name__)

class TokenizerStage(EvalLoops, LightningModule):
    """Trains a :class:`SignTokenizer` (decoupled SOKE parts, or the coupled baseline).

    Args:
        tokenizer: the tokenizer to train (built by LightningCLI from its class_path / init_args).
        normalization: statistics file or directory (same value as the datamodule's ``normalization``); copied into
            ``tokenizer.normalizer`` so checkpoints carry them. None: taken from the trainer's datamodule at setup.
        lr: AdamW learning rate (SOKE: 2e-4).
        betas: AdamW betas (SOKE: 0.9, 0.99).
        weight_decay: AdamW weight decay (SOKE: 0).
        scheduler: "cosine" (CosineAnnealingLR down to ``min_lr``) or "none".
        scheduler_interval: step the cosine per "epoch" (SOKE, T_max = max_epochs) or per "step"
            (T_max = estimated stepping batches).
        warmup_steps: linear warm-up steps before the cosine (0 = none, as SOKE).
        min_lr: final learning rate of the cosine (SOKE: 1e-6).
        commit_weight: weight of the summed commitment losses (SOKE: 0.02).
        velocity_weight: weight of a SmoothL1 loss on frame differences (SOKE: 0).
        joint_weight: weight of an L1 loss on root-relative joint positions (metres) of the reconstruction, through
            the differentiable ``joint_backend`` (SOKE: 0, feature loss only). Rotation errors near the root move
            every joint below them (a wrist-rotation error swings the whole hand), which a feature loss weighs like
            any other angle; this loss weighs them by their effect on the joints DTW-JPE scores. Needs the real
            normalisation statistics (positions of denormalised features).
        loss_padding: "exclude" padded frames from the reconstruction loss, or "reference" (zero them and
            average over all elements).
        joint_backend: forward-kinematics backend of the metrics ("builtin" or "smplx").
        metric_languages: language keys reported separately (default: every language of the registry, including
            those the data's stores declare).
        train_window: train on one random window of this many frames per sequence (a multiple of the tokenizer's
            down-sampling rate; T2M-GPT's ``win_size``, unused by SOKE); None trains on whole sequences (SOKE).
            Windows are drawn with the global torch RNG (seeded by ``seed_everything``), which checkpoints do not
            restore, so a resumed run is bit-identical only with None.
        compile: ``torch.compile`` the tokenizer in place (``nn.Module.compile``: parameter names, hence
            checkpoints, stay those of an uncompiled run); worth it only for long GPU runs.
        compile_options: keyword arguments of ``torch.compile`` (e.g. ``{mode: max-autotune}``).
    """

    def __init__(
        self,
        tokenizer: SignTokenizer,
        normalization: str | None = None,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "cosine",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        warmup_steps: int = 0,
        min_lr: float = 1e-6,
        commit_weight: float = 0.02,
        velocity_weight: float = 0.0,
        joint_weight: float = 0.0,
        loss_padding: Literal["exclude", "reference"] = "exclude",
        joint_backend: str = "builtin",
        metric_languages: list[str] | None = None,
        train_window: int | None = None,
        compile: bool = False,
        compile_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        compile_in_place(self.tokenizer, compile, **(compile_options or {}))
        if loss_padding not in ("exclude", "reference"):
            raise ValueError(f"loss_padding must be 'exclude' or 'reference', got {loss_padding!r}")
        if train_window is not None and (train_window <= 0 or train_window % tokenizer.downsample_rate):
            raise ValueError(f"train_window must be a positive multiple of the down-sampling rate "
                             f"{tokenizer.downsample_rate}, got {train_window}")
        self.feature_layout = tokenizer.feature_layout
        if self.feature_layout.is_keypoints and joint_weight > 0:
            raise ValueError(f"joint_weight needs forward kinematics; feature layout {self.feature_layout.name!r} "
                             f"is keypoints already (set joint_weight: 0)")
        if normalization is not None:
            self._set_statistics(Normalizer.from_file(normalization, self.feature_layout), str(normalization))
        self._stats_loaded = normalization is not None
        # A private copy: the registry's default instance is shared and must not be moved to this device.
        self.backend = copy.deepcopy(get_joint_backend(joint_backend))
        self.metric_names = (keypoint_metric_names(self.feature_layout) if self.feature_layout.is_keypoints
                             else list(JOINT_METRICS))
        self._build_joint_metrics(list(metric_languages or LANGUAGES))
        self.code_histograms = torch.nn.ModuleDict({
            stage: torch.nn.ModuleDict({p: CodeHistogram(n) for p, n in tokenizer.codebook_sizes.items()})
            for stage in ("val", "test")
        })
        # Reconstruction loss averaged over every element it covers (sum states): exact under DDP with uneven
        # evaluation shards, where a mean of per-rank means would weight the ranks equally.
        self.recon_means = torch.nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})

    # ----------------------------------------------------------------------------------------------- setup
    def _build_joint_metrics(self, languages: list[str]) -> None:
        self.metric_languages = languages
        groups = len(languages) + 1
        metric = GroupedPointMean if self.feature_layout.is_keypoints else GroupedFrameMean
        self.joint_metrics = torch.nn.ModuleDict({
            stage: metric(groups, len(self.metric_names)) for stage in ("val", "test")
        }).to(self.device)

    def _set_statistics(self, normalizer: Normalizer, source: str) -> None:
        self.tokenizer.normalizer.mean.copy_(normalizer.mean)
        self.tokenizer.normalizer.std.copy_(normalizer.std)
        log.info("tokenizer normalisation statistics from %s", source)

    def setup(self, stage: str) -> None:
        """Take (or check) the normalisation statistics of the trainer's datamodule, when it exposes them."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_layout = getattr(dm, "feature_layout", None) if dm is not None else None
        if data_layout is not None:
            check_same_layout(data_layout, f"the data ({', '.join(getattr(dm, 'stores', []))})",
                              self.feature_layout, "the tokenizer")
            if self.hparams.metric_languages is None and set(dm.languages) - set(self.metric_languages):
                self._build_joint_metrics(list(LANGUAGES))  # the stores declared languages of their own
        theirs = getattr(dm, "normalizer", None) if dm is not None else None
        if theirs is None:
            if not self._stats_loaded:
                log.warning("no normalisation statistics given and the datamodule exposes none: the tokenizer keeps "
                            "identity statistics (metrics are then computed on normalised features)")
            return
        if not self._stats_loaded:
            self._set_statistics(theirs, f"the datamodule ({type(dm).__name__}.normalizer)")
            self._stats_loaded = True
            return
        ours = self.tokenizer.normalizer
        if not (torch.allclose(ours.mean.cpu(), theirs.mean.cpu(), atol=1e-6)
                and torch.allclose(ours.std.cpu(), theirs.std.cpu(), atol=1e-6)):
            raise ValueError(
                f"TokenizerStage: normalisation statistics differ from the datamodule's (mean max |diff| "
                f"{(ours.mean.cpu() - theirs.mean.cpu()).abs().max():.3g}); pass the same `normalization` to the "
                f"model and the data (e.g. `normalization: ${{data.init_args.normalization}}`)"
            )

    # ----------------------------------------------------------------------------------------------- losses
    def _recon_loss(self, recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                    feature_mask: torch.Tensor | None = None) -> torch.Tensor:
        """SmoothL1 over valid frames; with ``feature_mask`` [B, T, D] also over observed features only."""
        m = mask[..., None].to(recon.dtype)
        if feature_mask is not None:
            m = m * feature_mask.to(recon.dtype)
        if self.hparams.loss_padding == "reference":
            return F.smooth_l1_loss(recon * m, target * m)
        per = F.smooth_l1_loss(recon, target, reduction="none") * m
        count = m.sum() if feature_mask is not None else m.sum() * recon.shape[-1]
        return per.sum() / count.clamp_min(1.0)

    def _velocity_loss(self, recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                       feature_mask: torch.Tensor | None = None) -> torch.Tensor:
        both = (mask[:, 1:] & mask[:, :-1])
        fm = None if feature_mask is None else feature_mask[:, 1:] & feature_mask[:, :-1]
        return self._recon_loss(recon.diff(dim=1), target.diff(dim=1), both, fm)

    def _joint_loss(self, recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance (metres, summed over x/y/z) of root-relative joints over the valid frames."""
        norm = self.tokenizer.normalizer
        with torch.autocast(device_type=recon.device.type, enabled=False):
            pred = self.backend.from_features(norm.denormalize(recon[mask].float()))
            with torch.no_grad():
                gt = self.backend.from_features(norm.denormalize(target[mask].float()))
            pred, gt = translate_to_joint(pred, 0), translate_to_joint(gt, 0)
            return (pred - gt).abs().sum(-1).mean()

    def _windows(self, batch: SignBatch):
        """(poses, lengths, mask, feature_mask) of one random ``train_window``-frame window per sequence (or the
        whole batch)."""
        window = self.hparams.train_window
        if window is None or batch.poses.shape[1] <= window:
            return batch.poses, batch.lengths, batch.mask, batch.feature_mask
        rate = self.tokenizer.downsample_rate
        lengths = batch.lengths.to(batch.poses.device)
        room = (lengths - window).clamp_min(0)
        start = (torch.rand(len(batch), device=lengths.device) * (room + 1)).floor().long()
        start = start - start % rate
        steps = torch.arange(window, device=lengths.device)
        idx = (start[:, None] + steps[None]).clamp(max=batch.poses.shape[1] - 1)
        poses = batch.poses.gather(1, idx[..., None].expand(-1, -1, batch.poses.shape[-1]))
        new_lengths = lengths.clamp(max=window)
        mask = steps[None] < new_lengths[:, None]
        fm = None
        if batch.feature_mask is not None:
            fm = batch.feature_mask.gather(1, idx[..., None].expand(-1, -1, batch.poses.shape[-1])) & mask[..., None]
        return poses * mask[..., None], new_lengths, mask, fm

    def training_step(self, batch: SignBatch, batch_idx: int) -> torch.Tensor:
        poses, lengths, mask, feature_mask = self._windows(batch)
        out = self.tokenizer(poses, lengths)
        recon = self._recon_loss(out.recon, poses, mask, feature_mask)
        loss = recon + self.hparams.commit_weight * out.commit_loss
        logs = {"train/recon": recon, "train/commit": out.commit_loss}
        if self.hparams.velocity_weight > 0:
            vel = self._velocity_loss(out.recon, poses, mask, feature_mask)
            loss = loss + self.hparams.velocity_weight * vel
            logs["train/velocity"] = vel
        if self.hparams.joint_weight > 0:
            joint = self._joint_loss(out.recon, poses, mask)
            loss = loss + self.hparams.joint_weight * joint
            logs["train/joint"] = joint
        for part, p in out.parts.items():
            logs[f"train/{part}/perplexity"] = p.quant.perplexity
            logs[f"train/{part}/usage"] = p.quant.usage
        logs["train/loss"] = loss
        self.log_dict(logs, batch_size=len(batch), sync_dist=False, prog_bar=False)
        self.log("loss", loss, batch_size=len(batch), prog_bar=True, logger=False)
        return loss

    # ----------------------------------------------------------------------------------------------- evaluation
    def _eval_step(self, batch: SignBatch, stage: str) -> None:
        out = self.tokenizer(batch.poses, batch.lengths)  # eval mode: no codebook update
        norm = self.tokenizer.normalizer
        mask = batch.mask
        gt = norm.denormalize(batch.poses[mask])
        pred = norm.denormalize(out.recon[mask])
        # group 0 = all frames, group 1 + i = language i (frames of unlisted languages count in "all" only)
        lang_ids = torch.tensor([self.metric_languages.index(x) + 1 if x in self.metric_languages else 0
                                 for x in batch.lang], device=gt.device)
        frame_groups = torch.repeat_interleave(lang_ids, batch.lengths.to(gt.device))
        per_lang = frame_groups > 0
        metric = self.joint_metrics[stage]
        if self.feature_layout.is_keypoints:
            layout = self.feature_layout
            visible = None if batch.feature_mask is None else layout.point_mask(batch.feature_mask[mask])
            sums, counts = keypoint_errors(layout, layout.points_of(pred), layout.points_of(gt), visible)
            metric.update(sums, counts, torch.zeros_like(frame_groups))
            metric.update(sums[per_lang], counts[per_lang], frame_groups[per_lang])
        else:
            errors = joint_errors(self.backend, gt, pred)
            values = torch.stack([errors[name] for name in JOINT_METRICS], dim=-1) * 1000.0  # [N, M] millimetres
            metric.update(values, torch.zeros_like(frame_groups))
            metric.update(values[per_lang], frame_groups[per_lang])
        for part, p in out.parts.items():
            self.code_histograms[stage][part].update(p.quant.codes[p.code_mask])
        loss = self._recon_loss(out.recon, batch.poses, mask, batch.feature_mask)
        if self.hparams.loss_padding == "reference":
            elements = out.recon.numel()
        elif batch.feature_mask is not None:
            elements = (batch.feature_mask & mask[..., None]).sum()
        else:
            elements = mask.sum() * out.recon.shape[-1]
        self.recon_means[stage].update(loss.detach(), weight=elements)

    def _eval_epoch_end(self, stage: str) -> None:
        logs = {}
        means, counts = self.joint_metrics[stage].compute()
        counts = counts if counts.dim() == 2 else counts[:, None].expand(-1, len(self.metric_names))
        for g, group in enumerate(["all", *self.metric_languages]):
            for m, name in enumerate(self.metric_names):
                if counts[g, m] == 0:
                    continue  # a language absent from this split (or a part never seen) is not reported
                logs[f"{stage}/{name}" if group == "all" else f"{stage}/{group}/{name}"] = means[g, m].float()
        self.joint_metrics[stage].reset()
        logs[f"{stage}/recon"] = self.recon_means[stage].compute()
        self.recon_means[stage].reset()
        for part, hist in self.code_histograms[stage].items():
            perplexity, usage = hist.compute()
            logs[f"{stage}/{part}/perplexity"] = perplexity
            logs[f"{stage}/{part}/usage"] = usage
            hist.reset()
        self.log_dict(logs, sync_dist=False)

    def predict_step(self, batch: SignBatch, batch_idx: int) -> dict:
        """Codes [B, L, P] and denormalised reconstructions [B, T, 133] of a batch, with lengths and keys."""
        out = self.tokenizer(batch.poses, batch.lengths)
        return {"keys": batch.keys, "lengths": batch.lengths, "codes": out.codes,
                "code_lengths": self.tokenizer.code_lengths(batch.lengths),
                "recon": self.tokenizer.normalizer.denormalize(out.recon)}

    # ----------------------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        hp = self.hparams
        return adamw_cosine(self.tokenizer.parameters(), self.trainer, lr=hp.lr, betas=hp.betas,
                            weight_decay=hp.weight_decay, scheduler=hp.scheduler, interval=hp.scheduler_interval,
                            warmup_steps=hp.warmup_steps, min_lr=hp.min_lr)

    # ----------------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record how to rebuild the tokenizer alone (``SignTokenizer.from_checkpoint``)."""
        checkpoint[CHECKPOINT_KEY] = self.tokenizer.checkpoint_entry(prefix="tokenizer.")
