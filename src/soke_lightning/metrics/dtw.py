"""DTW joint-error metrics as torchmetrics, per language × part, DDP-correct (padding repeats de-duplicated).

Keys of :meth:`SignMotionMetrics.compute`: ``{prefix}{variant}/{language}/{part}`` with part in
``body``, ``lhand``, ``rhand``, ``hand`` (mean of the two hands) and ``avg``
(joint-count-weighted: ``(12·body + 42·hand) / 54`` for SOKE's sets; docs/evaluation.md). Each value is the mean over
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
from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from soke_lightning.core.languages import LANGUAGES
from soke_lightning.metrics.functional.dtw import VARIANTS
from soke_lightning.metrics.functional.parts import JointPart, parts_from_joint_sets, score_parts

__all__ = ["JointPart", "SignMotionMetrics", "parts_from_joint_sets", "name_hash"]


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
        >>> import torch
        >>> from soke_lightning.kinematics import get_joint_backend
        >>> backend = get_joint_backend("builtin")
        >>> metric = SignMotionMetrics(parts_from_joint_sets(backend.joint_sets), prefix="test/")
        >>> gt = backend(torch.zeros(2, 8, 179))  # two samples of 8 rest frames
        >>> pred = gt.clone()
        >>> pred[1, :, list(backend.joint_sets["rhand"])[1:]] += 0.01  # sample "b": right-hand fingers 1 cm off
        >>> metric.update(pred, gt, None, None, ["csl", "csl"], ["a", "b"])
        >>> scores = metric.compute()
        >>> bool(scores["test/dtw_jpe/csl/rhand"] > 0), float(scores["test/dtw_jpe/csl/lhand"])  # only "b"'s rhand
        (True, 0.0)
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
        target_visible: torch.Tensor | None = None,
    ) -> None:
        """Score one batch.

        Args:
            pred_joints: [B, Tp, J, 3] predicted joints (metres).
            target_joints: [B, Tt, J, 3] ground-truth joints.
            pred_lengths, target_lengths: [B] valid frame counts (None: full length).
            langs: B language keys.
            names: B globally unique sample names (e.g. ``SignBatch.keys``), used to drop DDP padding repeats.
            target_visible: optional bool [B, Tt, J]: ground-truth points that were seen (keypoint corpora); missing
                ones are left out of every frame cost (:func:`score_parts`).
        """
        bsz = pred_joints.shape[0]
        if len(langs) != bsz or len(names) != bsz:
            raise ValueError(f"got {bsz} sequences but {len(langs)} languages and {len(names)} names")
        bad = sorted({lang for lang in langs if lang not in self.languages})
        if bad:
            raise KeyError(f"languages {bad} are not scored by this metric; it scores {list(self.languages)}")
        scores = score_parts(pred_joints, target_joints, pred_lengths, target_lengths, self.parts, self.variants,
                             self.engine, target_visible).to(self.device)
        self.score.append(scores)
        self.key.append(torch.tensor([name_hash(n) for n in names], dtype=torch.int64, device=self.device))
        self.lang.append(torch.tensor([self.languages.index(lang) for lang in langs], dtype=torch.int64,
                                      device=self.device))

    def per_sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every sample scored so far, each once (DDP padding repeats dropped), in name-hash order.

        Returns:
            (name hashes [N] (:func:`name_hash` of each sample's name), language indices [N] into
            :attr:`languages`, scores [N, V, P] float64 per variant and part).
        """
        if (isinstance(self.key, list) and not self.key) or (torch.is_tensor(self.key) and self.key.numel() == 0):
            empty = torch.zeros(0, dtype=torch.int64, device=self.device)
            return empty, empty, torch.zeros(0, len(self.variants), len(self.parts), dtype=torch.float64)
        keys, langs, scores = dim_zero_cat(self.key), dim_zero_cat(self.lang), dim_zero_cat(self.score)
        order = torch.argsort(keys, stable=True)
        keys = keys[order]
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]
        keep = order[first]
        return keys[first], langs[keep], scores[keep]

    def compute(self) -> dict[str, torch.Tensor]:
        """Mean score per variant × language × part (languages without samples are left out)."""
        keys, langs, scores = self.per_sample()
        if keys.numel() == 0:
            return {}
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
