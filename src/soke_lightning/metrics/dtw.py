"""DTW joint-error metrics as torchmetrics, per language × part, DDP-correct (padding repeats de-duplicated).

Keys of :meth:`SignMotionMetrics.compute`: ``{prefix}{variant}/{language}/{part}`` with part in
``body``, ``lhand``, ``rhand``, ``hand`` (mean of the two hands) and ``avg``
(joint-count-weighted: ``(12·body + 42·hand) / 54`` for SOKE's sets, SOKE_SPEC §6.4). Each value is the mean over
the test samples of that language of the per-sample DTW score (see
:mod:`soke_lightning.metrics.functional.dtw` for the variants, formulas and units).

De-duplication. A ``DistributedSampler`` pads the last batch with repeated samples, so a sample may be scored on
two ranks. Which samples repeat is only known after gathering, so the state holds one row per scored sample — a
stable 63-bit hash of its name, its language index and its scores (``dist_reduce_fx="cat"``, a few dozen bytes per
sample, no Python objects) — and :meth:`compute` keeps the first row of every name before averaging. The result is
the same on any number of ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from soke_lightning.data.languages import LANGUAGES
from soke_lightning.metrics.functional.dtw import VARIANTS, dtw_joint_error

__all__ = ["JointPart", "SignMotionMetrics", "parts_from_joint_sets", "name_hash"]


@dataclass(frozen=True)
class JointPart:
    """How one part is scored on the backend's joints.

    Attributes:
        name: "body", "lhand", "rhand", ...
        select: joints taken from the full skeleton first (None: all); the indices below refer to this selection.
        align_index: joint of the root/wrist translation (DTW-JPE).
        align_joints: joints the Procrustes fit uses (None: all selected).
        eval_joints: joints the per-frame error averages over (None: all selected).
    """

    name: str
    select: tuple[int, ...] | None
    align_index: int = 0
    align_joints: tuple[int, ...] | None = None
    eval_joints: tuple[int, ...] | None = None

    def num_eval_joints(self, total: int | None = None) -> int:
        if self.eval_joints is not None:
            return len(self.eval_joints)
        if self.select is not None:
            return len(self.select)
        if total is None:
            raise ValueError(f"part {self.name!r} evaluates all joints; pass the skeleton's joint count")
        return total


def parts_from_joint_sets(joint_sets: Mapping[str, Sequence[int]]) -> tuple[JointPart, ...]:
    """SOKE's parts from a joint backend's ``joint_sets`` (SOKE_SPEC §6.1-6.2).

    body: translate by joint 0 (pelvis) of the full skeleton, fit Procrustes on ``body_align`` (all joints),
    score the ``body`` joints; lhand / rhand: select the 21 hand joints, translate by the wrist (their joint 0),
    fit and score on all 21.
    """
    missing = [k for k in ("body", "lhand", "rhand") if k not in joint_sets]
    if missing:
        raise KeyError(f"joint_sets lacks {missing}; it has {sorted(joint_sets)}")
    align = joint_sets.get("body_align")
    return (
        JointPart("body", None, 0, None if align is None else tuple(int(i) for i in align),
                  tuple(int(i) for i in joint_sets["body"])),
        JointPart("lhand", tuple(int(i) for i in joint_sets["lhand"])),
        JointPart("rhand", tuple(int(i) for i in joint_sets["rhand"])),
    )


def name_hash(name: str) -> int:
    """Stable (process-independent) non-negative 63-bit hash of a sample name."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class SignMotionMetrics(Metric):
    """DTW-JPE / DTW-PA-JPE / ... per language × part.

    Args:
        parts: how each part is scored (see :func:`parts_from_joint_sets`).
        variants: names from :data:`soke_lightning.metrics.functional.VARIANTS`.
        languages: language keys in output order (default: the registry).
        prefix: prepended to every key (e.g. "test/").
        engine: DTW engine ("auto": numba on CPU, wavefront on GPU).

    Example:
        >>> metric = SignMotionMetrics(parts_from_joint_sets(backend.joint_sets), prefix="test/")
        >>> metric.update(pred_joints, gt_joints, pred_lengths, gt_lengths, batch.lang, batch.keys)
        >>> metric.compute()["test/dtw_pa_jpe/csl/hand"]
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        parts: Sequence[JointPart],
        variants: Sequence[str] = ("dtw_jpe", "dtw_pa_jpe"),
        languages: Sequence[str] | None = None,
        prefix: str = "",
        engine: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown DTW variants {unknown}; valid: {sorted(VARIANTS)}")
        self.parts = tuple(parts)
        self.variants = tuple(variants)
        self.languages = tuple(languages) if languages is not None else tuple(LANGUAGES)
        self.prefix = prefix
        self.engine = engine
        self.add_state("key", default=[], dist_reduce_fx="cat")
        self.add_state("lang", default=[], dist_reduce_fx="cat")
        self.add_state("score", default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred_joints: torch.Tensor,
        target_joints: torch.Tensor,
        pred_lengths: torch.Tensor | None,
        target_lengths: torch.Tensor | None,
        langs: Sequence[str],
        names: Sequence[str],
    ) -> None:
        """Score one batch.

        Args:
            pred_joints: [B, Tp, J, 3] predicted joints (metres).
            target_joints: [B, Tt, J, 3] ground-truth joints.
            pred_lengths, target_lengths: [B] valid frame counts (None: full length).
            langs: B language keys.
            names: B globally unique sample names (e.g. ``SignBatch.keys``), used to drop DDP padding repeats.
        """
        bsz = pred_joints.shape[0]
        if len(langs) != bsz or len(names) != bsz:
            raise ValueError(f"got {bsz} sequences but {len(langs)} languages and {len(names)} names")
        bad = sorted({lang for lang in langs if lang not in self.languages})
        if bad:
            raise KeyError(f"languages {bad} are not scored by this metric; it scores {list(self.languages)}")
        scores = torch.empty(bsz, len(self.variants), len(self.parts), dtype=torch.float64, device=self.device)
        for p, part in enumerate(self.parts):
            pred, target = pred_joints, target_joints
            if part.select is not None:
                pred, target = pred[:, :, list(part.select)], target[:, :, list(part.select)]
            for v, variant in enumerate(self.variants):
                kw = dict(VARIANTS[variant])
                if kw["align"] == "procrustes":
                    kw["align_joints"] = part.align_joints
                kw["align_index"] = part.align_index
                scores[:, v, p] = dtw_joint_error(pred, target, pred_lengths, target_lengths,
                                                  eval_joints=part.eval_joints, engine=self.engine, **kw).to(
                    self.device)
        self.score.append(scores)
        self.key.append(torch.tensor([name_hash(n) for n in names], dtype=torch.int64, device=self.device))
        self.lang.append(torch.tensor([self.languages.index(lang) for lang in langs], dtype=torch.int64,
                                      device=self.device))

    def _unique_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        keys, langs, scores = dim_zero_cat(self.key), dim_zero_cat(self.lang), dim_zero_cat(self.score)
        order = torch.argsort(keys, stable=True)
        keys = keys[order]
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]
        keep = order[first]
        return langs[keep], scores[keep]

    def compute(self) -> dict[str, torch.Tensor]:
        """Mean score per variant × language × part (languages without samples are left out)."""
        if (isinstance(self.key, list) and not self.key) or (torch.is_tensor(self.key) and self.key.numel() == 0):
            return {}
        langs, scores = self._unique_rows()
        names = [p.name for p in self.parts]
        out: dict[str, torch.Tensor] = {}
        for li, lang in enumerate(self.languages):
            rows = scores[langs == li]
            if rows.shape[0] == 0:
                continue
            mean = rows.mean(0)  # [V, P]
            for v, variant in enumerate(self.variants):
                values = {name: mean[v, p] for p, name in enumerate(names)}
                if "lhand" in values and "rhand" in values:
                    values["hand"] = (values["lhand"] + values["rhand"]) / 2
                    if "body" in values:
                        nb = self._joints("body")
                        nh = self._joints("lhand") + self._joints("rhand")
                        values["avg"] = (nb * values["body"] + nh * values["hand"]) / (nb + nh)
                for part, value in values.items():
                    out[f"{self.prefix}{variant}/{lang}/{part}"] = value
        return out

    def _joints(self, name: str) -> int:
        part = next(p for p in self.parts if p.name == name)
        return part.num_eval_joints()
