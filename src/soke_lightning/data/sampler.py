"""Language-balanced temperature sampling for the training split, epoch-seeded and DDP-sharded.

Each epoch draws ``num_samples`` dataset indices. Language ``l`` with ``n_l`` samples gets a share
``p_l ∝ n_l ** (1 / T)`` of the epoch: ``T = 1`` keeps the corpus proportions (the epoch is then a plain shuffle of
the dataset), ``T -> inf`` gives every language the same share. Slot counts are rounded with the largest-remainder
rule (deterministic, they always sum to the epoch size); within a language the samples are taken from successive
random permutations, so a sample repeats only after every sample of its language was used. The epoch's list is
shuffled with ``seed + epoch`` and every rank takes the positions ``rank::world_size`` of it: the shards are
disjoint, equally sized and together form the epoch.

Under DDP: the class derives from :class:`torch.utils.data.DistributedSampler`, which is exactly what Lightning
checks before it would wrap a sampler in its own ``DistributedSamplerWrapper``; so ``Trainer(use_distributed_sampler
=True)`` (the default) leaves it alone and no further flag is needed. Rank and world size are read from
``torch.distributed`` when the sampler is iterated (the process group exists by then), unless given explicitly.
Lightning calls :meth:`set_epoch` at the start of every training epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def world_and_rank() -> tuple[int, int]:
    """(world size, rank) of the default process group, or (1, 0) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def language_weights(counts: dict[str, int], temperature: float) -> dict[str, float]:
    """Sampling probability per language: ``n_l ** (1 / temperature)``, normalised.

    Args:
        counts: samples per language (> 0 each).
        temperature: >= 1 in practice; ``math.inf`` gives the uniform distribution.
    """
    if temperature <= 0:
        raise ValueError(f"balance temperature must be > 0, got {temperature}")
    if not counts or any(n <= 0 for n in counts.values()):
        raise ValueError(f"every language needs at least one sample, got counts {counts}")
    exponent = 0.0 if math.isinf(temperature) else 1.0 / temperature
    # Work in log space so large counts with small temperatures do not overflow.
    logw = {lang: exponent * math.log(n) for lang, n in counts.items()}
    top = max(logw.values())
    w = {lang: math.exp(v - top) for lang, v in logw.items()}
    total = sum(w.values())
    return {lang: v / total for lang, v in w.items()}


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` slots by ``weights`` with the largest-remainder rule (ties go to the earlier key)."""
    quotas = {k: total * w for k, w in weights.items()}
    counts = {k: int(math.floor(q + 1e-9)) for k, q in quotas.items()}
    missing = total - sum(counts.values())
    order = sorted(quotas, key=lambda k: -(quotas[k] - counts[k]))
    for k in order[:missing]:
        counts[k] += 1
    return counts


class LanguageBalancedSampler(DistributedSampler):
    """Temperature-balanced, epoch-seeded, rank-sharded sampler over a dataset whose items have a language.

    Args:
        langs: the language key of every dataset index (length = dataset size).
        temperature: balance temperature T (1 = proportional, larger = flatter, ``inf`` = uniform).
        num_samples: size of one epoch over all ranks; default the dataset size.
        seed: base seed; the epoch's order depends only on ``seed`` and the epoch.
        num_replicas: world size; default read from ``torch.distributed`` (1 without a process group).
        rank: this process's rank; default read from ``torch.distributed`` (0 without a process group).
    """

    def __init__(
        self,
        langs: Sequence[str],
        temperature: float = 1.0,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        # DistributedSampler.__init__ insists on a process group; everything it would set is handled here.
        if len(langs) == 0:
            raise ValueError("LanguageBalancedSampler: the dataset is empty")
        self.langs = list(langs)
        self.temperature = float(temperature)
        self.epoch_size = len(self.langs) if num_samples is None else int(num_samples)
        if self.epoch_size <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.seed = int(seed)
        self.epoch = 0
        self.shuffle = True
        self.drop_last = False
        self._num_replicas = num_replicas
        self._rank = rank
        self.by_lang: dict[str, np.ndarray] = {}
        for lang in dict.fromkeys(self.langs):
            self.by_lang[lang] = np.array([i for i, x in enumerate(self.langs) if x == lang], dtype=np.int64)
        self.weights = language_weights({k: v.size for k, v in self.by_lang.items()}, self.temperature)

    @property
    def num_replicas(self) -> int:  # type: ignore[override]
        return self._num_replicas if self._num_replicas is not None else world_and_rank()[0]

    @property
    def rank(self) -> int:  # type: ignore[override]
        return self._rank if self._rank is not None else world_and_rank()[1]

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        """Samples per rank: the epoch size rounded up to a multiple of the world size, divided by it."""
        return math.ceil(self.epoch_size / self.num_replicas)

    @property
    def total_size(self) -> int:  # type: ignore[override]
        return self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose list :meth:`__iter__` returns (Lightning calls it every epoch)."""
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int | None = None) -> np.ndarray:
        """The full list of one epoch over all ranks, [total_size] dataset indices (rank ``r`` gets ``[r::world]``)."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch)])
        counts = allocate(self.total_size, self.weights)
        chosen = []
        for lang, pool in self.by_lang.items():
            k = counts[lang]
            reps = math.ceil(k / pool.size) if k else 0
            stream = np.concatenate([rng.permutation(pool) for _ in range(reps)]) if reps else pool[:0]
            chosen.append(stream[:k])
        return rng.permutation(np.concatenate(chosen))

    def __iter__(self) -> Iterator[int]:
        shard = self.epoch_indices()[self.rank :: self.num_replicas]
        return iter(shard.tolist())

    def __len__(self) -> int:
        return self.num_samples


class SkipTrainedBatches(DistributedSampler):
    """Wraps a training sampler so that a pass starts after the batches this epoch has already trained.

    Lightning restores its loop counters from a mid-epoch checkpoint but restarts a plain DataLoader at the
    epoch's first batch: without this the resumed epoch would train its first batches twice and never see the
    rest. ``trained()`` is read lazily, when the DataLoader asks for the first index of a pass — by then the
    counters are restored (0 in a fresh epoch). Exact only for samplers whose order depends on seed and epoch
    alone (``shuffle`` and ``balanced``). A DistributedSampler subclass, so Lightning does not wrap it again.

    Args:
        sampler: the sampler to wrap (its ``set_epoch`` is forwarded).
        batch_size: samples per batch.
        trained: returns the number of batches of the current epoch already trained.
    """

    def __init__(self, sampler, batch_size: int, trained):  # no super().__init__: it would need a process group
        self.sampler, self.batch_size, self.trained = sampler, batch_size, trained

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:  # the full epoch: Lightning counts a resumed epoch's batches from the checkpoint
        return len(self.sampler)

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.trained() * self.batch_size, None)
