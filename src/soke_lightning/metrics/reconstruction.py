"""Stage-1 reconstruction metrics as torchmetrics Metrics with sum states (DDP-exact).

:class:`CodeHistogram` counts the codes of one part over an epoch and computes perplexity and usage;
:class:`GroupedFrameMean` averages per-frame joint errors (from
:func:`soke_lightning.metrics.functional.reconstruction.joint_errors`) per group (language) and metric;
:class:`GroupedPointMean` averages keypoint errors (sums and counts from
:func:`soke_lightning.metrics.functional.keypoints.keypoint_errors`) per group and metric.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from soke_lightning.models.quantizer import histogram_stats

#: Joint-error metrics of the tokenizer, in millimetres.
JOINT_METRICS: tuple[str, ...] = ("mpjpe_body", "mpjpe_pa_body", "mpjpe_hand", "mpjpe_pa_hand")


class CodeHistogram(Metric):
    """Code histogram of one part over an epoch (sum state: DDP-correct); computes (perplexity, usage).

    Example:
        >>> import torch
        >>> histogram = CodeHistogram(num_codes=4)
        >>> histogram.update(torch.tensor([0, 1, 1, 3]))
        >>> perplexity, usage = histogram.compute()
        >>> round(float(perplexity), 4), float(usage)  # 3 of 4 codes used
        (2.8284, 0.75)"""

    full_state_update = False

    def __init__(self, num_codes: int):
        super().__init__()
        self.add_state("counts", default=torch.zeros(num_codes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, codes: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1), minlength=self.counts.numel()).to(self.counts.dtype)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return histogram_stats(self.counts)


class GroupedFrameMean(Metric):
    """Per-group means of per-frame errors: sum states [G, M] and frame counts [G] (DDP-correct).

    Example:
        >>> import torch
        >>> metric = GroupedFrameMean(num_groups=2, num_metrics=1)
        >>> metric.update(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([0, 0, 1]))
        >>> means, counts = metric.compute()
        >>> means.flatten().tolist(), counts.tolist()
        ([2.0, 5.0], [2.0, 1.0])"""

    full_state_update = False

    def __init__(self, num_groups: int, num_metrics: int):
        super().__init__()
        self.add_state("sums", default=torch.zeros(num_groups, num_metrics, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, groups: torch.Tensor) -> None:
        """values [N, M] per frame, groups [N] group index per frame."""
        self.sums.index_add_(0, groups, values.to(self.sums.dtype))
        self.counts.index_add_(0, groups, torch.ones_like(groups, dtype=self.counts.dtype))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means [G, M] (NaN where a group has no frame), counts [G])."""
        return self.sums / self.counts[:, None], self.counts


class GroupedPointMean(Metric):
    """Per-group means of summed point errors: sum states [G, M] of errors and of counted points (DDP-correct).

    Unlike :class:`GroupedFrameMean`, each metric has its own count, so points left out (missing keypoints) do not
    dilute the mean.

    Example:
        >>> import torch
        >>> metric = GroupedPointMean(num_groups=1, num_metrics=2)
        >>> metric.update(torch.tensor([[3.0, 1.0], [1.0, 0.0]]), torch.tensor([[3.0, 1.0], [1.0, 0.0]]),
        ...               torch.tensor([0, 0]))
        >>> means, counts = metric.compute()
        >>> means.tolist(), counts.tolist()
        ([[1.0, 1.0]], [[4.0, 1.0]])"""

    full_state_update = False

    def __init__(self, num_groups: int, num_metrics: int):
        super().__init__()
        self.add_state("sums", default=torch.zeros(num_groups, num_metrics, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(num_groups, num_metrics, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, sums: torch.Tensor, counts: torch.Tensor, groups: torch.Tensor) -> None:
        """sums [N, M] and counts [N, M] per frame, groups [N] group index per frame."""
        self.sums.index_add_(0, groups, sums.to(self.sums.dtype))
        self.counts.index_add_(0, groups, counts.to(self.counts.dtype))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means [G, M] (NaN where nothing was counted), counts [G, M])."""
        return self.sums / self.counts, self.counts
