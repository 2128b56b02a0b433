"""The multilingual DataModule shared by both stages: several packed stores behind one LightningDataModule.

Any mix of corpora (How2Sign, CSL-Daily, Phoenix-2014T, SynthSign, ...) is read from packed stores (see
:mod:`soke_lightning.data.store`); a split is the concatenation of that split of every store, in the order given
(docs/design.md §2.7). Each sample goes through the load-time rule of docs/design.md §2.5 (:mod:`.processing`), is reduced
to the 133-d features and normalised; :func:`collate` pads a batch with zeros in normalised space into a
:class:`~soke_lightning.core.batch.SignBatch`.

Order: the training split is shuffled (``sampler="shuffle"``, epoch-seeded; the reference forgets to shuffle),
or drawn language-balanced (``"balanced"``, :class:`~.sampler.LanguageBalancedSampler`), or read in the
reference's fixed order (``"sequential"``, for parity runs). Validation/test/predict read their split in store
order; every sample carries its ``lang``, so metrics are reported per language. Under DDP the shuffle and balanced
samplers shard by themselves (they are ``DistributedSampler`` instances, which Lightning leaves alone); for
sequential training Lightning inserts its own non-shuffling ``DistributedSampler``. Validation/test/predict use an
unrepeated sampler: every sample is read by exactly one rank, so sum-state metrics are exact. A training pass
resumed from a mid-epoch checkpoint starts after the batches already trained (:class:`~.sampler.SkipTrainedBatches`).

Stage 2: with ``token_cache`` (a directory written by ``soke encode``), every item also carries its motion-token
codes ``[L, P]`` (:attr:`SignItem.codes`, looked up by ``corpus/name`` in the cache split of the same name) and
:func:`collate` pads them with -1 into ``SignBatch.codes`` / ``SignBatch.code_lengths``. The LM stage trains on
text + codes and still receives the poses, which validation/test compare generated motion against. The cache is
tied to one tokenizer: ``tokenizer_hash`` (or :meth:`SignDataModule.check_token_cache`, which the LM stage calls
with its frozen tokenizer's hash) refuses a cache made by another one. Optional code-level augmentation of the
training split (docs/design.md §4.5): centre-crop the codes to a multiple of ``code_unit`` (SOKE: 4) and, with
probability ``code_drop_prob`` (SOKE: 1/3), drop one code at the head or the tail.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from soke_lightning.core.batch import SignBatch
from soke_lightning.core.feature_layout import FeatureLayout, check_same_layout
from soke_lightning.core.languages import LANGUAGES, get_corpus
from soke_lightning.data.normalization import EPS, STATS_FILE, Normalizer
from soke_lightning.data.processing import TemporalProcessing
from soke_lightning.data.sampler import LanguageBalancedSampler, SkipTrainedBatches, world_and_rank
from soke_lightning.data.store import PackedStore, StoreSplit, open_store
from soke_lightning.data.token_cache import TokenCache, TokenSplit, open_token_cache

log = logging.getLogger(__name__)

SAMPLERS = ("shuffle", "balanced", "sequential")


@dataclass
class SignItem:
    """One processed sample, as returned by :class:`SignDataset`.

    Attributes:
        poses: [T, D] normalised features after the temporal rule (T in [min_len, max_len], T % unit_len == 0);
            D is the feature layout's size (SMPL-X: 133). Missing keypoints are 0 (the mean).
        name: sample name (unique within its store split).
        text: spoken-language sentence.
        lang: language key ("asl", "csl", "dgs").
        corpus: corpus id.
        fps: frame rate of ``poses`` (after the fps cap).
        codes: [L, P] motion-token codes from the token cache (stage 2), else None.
        feature_mask: bool [T, D], False on coordinates of missing keypoints (keypoint layouts), else None.
    """

    poses: torch.Tensor
    name: str
    text: str
    lang: str
    corpus: str
    fps: float
    codes: torch.Tensor | None = None
    feature_mask: torch.Tensor | None = None


def pad_codes(codes: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-sample [L_i, P] code matrices into ([B, L_max, P] codes padded with -1, [B] lengths)."""
    lengths = torch.tensor([c.shape[0] for c in codes], dtype=torch.long)
    padded = np.full((len(codes), max(1, int(lengths.max())), codes[0].shape[1]), -1, dtype=np.int64)
    for i, c in enumerate(codes):
        padded[i, : c.shape[0]] = np.asarray(c)
    return torch.from_numpy(padded), lengths


def collate(items: Sequence[SignItem]) -> SignBatch:
    """Pad a list of items into a :class:`SignBatch` (zeros in normalised space = the mean pose).

    Returns:
        SignBatch with poses [B, T_max, 133], lengths [B], mask [B, T_max]; with codes also codes [B, L_max, P]
        (padded with -1) and code_lengths [B].
    """
    if not items:
        raise ValueError("collate: empty batch")
    with_codes = [it.codes is not None for it in items]
    if any(with_codes) and not all(with_codes):
        raise ValueError("collate: some items carry token codes and others do not; give every dataset of the "
                         "batch the same token cache")
    codes = code_lengths = None
    if all(with_codes):
        codes, code_lengths = pad_codes([it.codes.numpy() for it in items])
    lengths = torch.tensor([it.poses.shape[0] for it in items], dtype=torch.long)
    # Filled in numpy: torch's parallel fill/copy kernels are far slower on a few busy cores (see __getitem__).
    dims = {it.poses.shape[1] for it in items}
    if len(dims) != 1:
        raise ValueError(f"collate: items have feature sizes {sorted(dims)}; every store of a batch must share one "
                         f"feature layout")
    poses = np.zeros((len(items), int(lengths.max()), dims.pop()), dtype=np.float32)
    for i, it in enumerate(items):
        poses[i, : it.poses.shape[0]] = it.poses.numpy()
    mask = torch.arange(poses.shape[1])[None, :] < lengths[:, None]
    feature_mask = None
    if items[0].feature_mask is not None:
        fm = np.zeros(poses.shape, dtype=bool)
        for i, it in enumerate(items):
            fm[i, : it.poses.shape[0]] = it.feature_mask.numpy()
        feature_mask = torch.from_numpy(fm)
    return SignBatch(
        poses=torch.from_numpy(poses),
        lengths=lengths,
        mask=mask,
        text=[it.text for it in items],
        lang=[it.lang for it in items],
        name=[it.name for it in items],
        corpus=[it.corpus for it in items],
        codes=codes,
        code_lengths=code_lengths,
        feature_mask=feature_mask,
        extra={"fps": [it.fps for it in items]},
    )


class SignDataset(Dataset):
    """The samples of several store splits, processed and normalised on access.

    Frames are read lazily from each split's memory map; the maps are re-opened in every worker process (they are
    not pickled), so the dataset works with any number of DataLoader workers and any start method.

    Args:
        splits: opened store splits, concatenated in this order.
        normalizer: statistics applied to the 133-d features.
        processing: the temporal rule (fps cap + length rule).
        languages: keep only samples of these language keys (None = all).
        random_crop: crop at a random offset instead of the centre (training augmentation; SOKE crops the centre).
        tokens: token-cache split holding the codes of every item (stage 2); None: items carry no codes.
        code_unit: centre-crop codes to a multiple of this many steps (SOKE's stage-2 dataset: 4; 1 = off).
        code_drop_prob: probability of dropping one code at the head or the tail (50/50; SOKE: 1/3).
    """

    def __init__(
        self,
        splits: Sequence[StoreSplit],
        normalizer: Normalizer,
        processing: TemporalProcessing | None = None,
        languages: Sequence[str] | None = None,
        random_crop: bool = False,
        tokens: TokenSplit | None = None,
        code_unit: int = 1,
        code_drop_prob: float = 0.0,
    ):
        self.sources = [(str(sp.root), sp.name) for sp in splits]
        self._splits: list[StoreSplit | None] = list(splits)
        self.records = [sp.records for sp in splits]
        self.normalizer = normalizer
        self.layout: FeatureLayout = normalizer.layout
        for sp in splits:
            check_same_layout(open_store(sp.root).layout, f"store {sp.root}", self.layout, "the normaliser")
        # Normalise in numpy with the normaliser's float32 buffers: identical arithmetic to Normalizer.normalize,
        # but no torch intra-op thread pool, which costs milliseconds per small tensor when cores are busy.
        self._mean = normalizer.mean.detach().cpu().numpy().astype(np.float32)
        self._scale = (normalizer.std + EPS).detach().cpu().numpy().astype(np.float32)
        self.processing = processing or TemporalProcessing()
        self.random_crop = random_crop
        keep = None if languages is None else set(languages)
        entries = [
            (s, i)
            for s, recs in enumerate(self.records)
            for i, r in enumerate(recs)
            if keep is None or r["lang"] in keep
        ]
        self.entries = np.array(entries, dtype=np.int64).reshape(-1, 2)
        self._fps_caps: dict[str, float | None] = {}
        self.tokens = tokens
        self.code_unit = int(code_unit)
        self.code_drop_prob = float(code_drop_prob)
        if tokens is not None:
            missing = [k for k in self.keys if k not in tokens]
            if missing:
                raise KeyError(f"token cache split {tokens.name!r} lacks {len(missing)} of {len(self)} samples (e.g. "
                               f"{missing[:3]}); re-run `soke encode` on the same stores {[s for s, _ in self.sources]}")

    @property
    def keys(self) -> list[str]:
        """Globally unique keys ``corpus/name`` of every item (the token cache's keys)."""
        return [f"{self.records[s][i]['corpus']}/{self.records[s][i]['name']}" for s, i in self.entries]

    def _codes(self, key: str, rng: np.random.Generator | None) -> torch.Tensor:
        """Codes [L, P] of one item, with the §4.5 augmentation when training (``rng`` given)."""
        codes = self.tokens[key]
        if rng is not None:
            if self.code_unit > 1 and codes.shape[0] >= self.code_unit:
                keep = codes.shape[0] - codes.shape[0] % self.code_unit
                start = (codes.shape[0] - keep) // 2
                codes = codes[start:start + keep]
            if codes.shape[0] > 1 and rng.random() < self.code_drop_prob:
                codes = codes[1:] if rng.random() < 0.5 else codes[:-1]
        return torch.from_numpy(np.ascontiguousarray(codes))

    def __len__(self) -> int:
        return int(self.entries.shape[0])

    def record(self, index: int) -> dict:
        """The store index record (name, text, lang, corpus, offset, length, fps, meta) of item ``index``."""
        s, i = self.entries[index]
        return self.records[s][i]

    @property
    def langs(self) -> list[str]:
        """Language key of every item, in item order (what the balanced sampler needs)."""
        return [self.records[s][i]["lang"] for s, i in self.entries]

    @property
    def names(self) -> list[str]:
        return [self.records[s][i]["name"] for s, i in self.entries]

    def subset(self, indices: Sequence[int]) -> SignDataset:
        """A view holding only items ``indices`` (same stores, same processing)."""
        view = object.__new__(SignDataset)
        view.__dict__.update(self.__dict__)
        view.entries = self.entries[np.asarray(indices, dtype=np.int64)].reshape(-1, 2)
        return view

    def fps_cap(self, corpus: str) -> float | None:
        if corpus not in self._fps_caps:
            self._fps_caps[corpus] = get_corpus(corpus).fps_cap if self.processing.apply_fps_cap else None
        return self._fps_caps[corpus]

    def _split(self, s: int) -> StoreSplit:
        sp = self._splits[s]
        if sp is None:
            root, name = self.sources[s]
            sp = self._splits[s] = open_store(root).split(name)
        return sp

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_splits"] = [None] * len(self.sources)
        return state

    def __getitem__(self, index: int) -> SignItem:
        s, i = self.entries[index]
        r = self.records[s][i]
        cap = self.fps_cap(r["corpus"])
        # Each worker's torch RNG is re-seeded by the DataLoader every epoch, so the crop changes per epoch.
        augment = self.tokens is not None and (self.code_unit > 1 or self.code_drop_prob > 0)
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.random_crop or augment else None
        idx = self.processing.indices(int(r["length"]), float(r["fps"]), cap, rng if self.random_crop else None)
        raw = np.asarray(self._split(s).frames[r["offset"] + idx], dtype=np.float32)
        poses = (self.layout.features(raw) - self._mean) / self._scale
        feature_mask = self.layout.feature_mask(raw)
        if feature_mask is not None:
            poses = poses * feature_mask  # a missing point sits at the mean: 0 in normalised space
        return SignItem(
            poses=torch.from_numpy(poses),
            name=r["name"],
            text=r["text"],
            lang=r["lang"],
            corpus=r["corpus"],
            fps=self.processing.output_fps(float(r["fps"]), cap),
            codes=None if self.tokens is None else self._codes(f"{r['corpus']}/{r['name']}", rng if augment else None),
            feature_mask=None if feature_mask is None else torch.from_numpy(feature_mask),
        )


def stratified_subset(langs: Sequence[str], max_samples: int) -> list[int]:
    """A deterministic subset of at most ``max_samples`` indices with (as far as possible) equal counts per language.

    Languages with fewer samples than their share give the rest to the others; within a language the picks are
    evenly spaced over its samples. Returned indices are sorted.
    """
    if max_samples <= 0:
        raise ValueError(f"val_max_samples must be positive, got {max_samples}")
    pools: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        pools.setdefault(lang, []).append(i)
    order = sorted(pools, key=lambda k: (len(pools[k]), k))
    remaining, out = max_samples, []
    for j, lang in enumerate(order):
        pool = pools[lang]
        take = min(len(pool), remaining // (len(order) - j))
        remaining -= take
        if take:
            pick = np.round(np.linspace(0, len(pool) - 1, take)).astype(np.int64)
            out.extend(pool[k] for k in pick)
    return sorted(out)


class SignDataModule(LightningDataModule):
    """Multilingual sign-language data from one or more packed stores, for both stages.

    Args:
        stores: store directories (from `soke prepare` / `soke synth`); each split is their concatenation in order.
        languages: keep only these language keys (e.g. ["asl", "dgs"]); None keeps every language in the stores.
        normalization: statistics: our ``normalization.pt``, a store directory, or a directory with the official
            ``mean.pt``/``std.pt``. Default: ``<first store>/normalization.pt``.
        batch_size: training batch size (per process).
        eval_batch_size: validation/test/predict batch size; default ``batch_size``.
        num_workers: DataLoader worker processes.
        min_len: sequences shorter than this are stretched to it (frames; SOKE: 40).
        max_len: sequences longer than this are subsampled to it (frames; SOKE: 400).
        unit_len: other lengths are centre-cropped to a multiple of this (SOKE: 4).
        apply_fps_cap: resample samples above their corpus's fps cap (How2Sign: 24 fps), as SOKE does.
        random_crop: training only: crop to the multiple of ``unit_len`` at a random offset instead of the centre.
        sampler: training order: "shuffle" (epoch-seeded permutation), "balanced" (language-balanced with
            ``balance_temperature``) or "sequential" (the reference's fixed store order, for parity).
        balance_temperature: T of the balanced sampler, p(lang) ∝ n_lang^(1/T): 1 = proportional, large = uniform.
        train_split: store split used for training.
        val_split: store split used for validation.
        test_split: store split used for test and predict.
        val_max_samples: validate on a deterministic language-stratified subset of at most this many samples.
        seed: seed of the training order (shuffle / balanced) together with the epoch.
        token_cache: stage 2: a token cache directory from ``soke encode`` on the same stores; items then carry
            their codes (``SignBatch.codes``). None: no codes (stage 1).
        tokenizer_hash: refuse a ``token_cache`` whose tokenizer hash differs (naming both); the LM stage also checks
            the cache against its frozen tokenizer, so this is only needed when the DataModule is used alone.
        code_unit: training codes are centre-cropped to a multiple of this (docs/design.md §4.5: 4; default 1 = off).
        code_drop_prob: probability of dropping one training code at the head or tail (SOKE: 1/3; default 0).
    """

    def __init__(
        self,
        stores: list[str],
        languages: list[str] | None = None,
        normalization: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        min_len: int = 40,
        max_len: int = 400,
        unit_len: int = 4,
        apply_fps_cap: bool = True,
        random_crop: bool = False,
        sampler: Literal["shuffle", "balanced", "sequential"] = "shuffle",
        balance_temperature: float = 1.0,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        val_max_samples: int | None = None,
        seed: int = 0,
        token_cache: str | None = None,
        tokenizer_hash: str | None = None,
        code_unit: int = 1,
        code_drop_prob: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if isinstance(stores, (str, os.PathLike)):
            stores = [stores]
        if not stores:
            raise ValueError("SignDataModule: `stores` is empty; give at least one store directory")
        self.stores = [str(s) for s in stores]
        self._stores: list[PackedStore] | None = None
        if languages is not None:
            unknown = [x for x in languages if x not in LANGUAGES]
            if unknown and all((Path(s) / "store.json").is_file() for s in self.stores):
                self._open_stores()  # stores of keypoint corpora declare their own languages
                unknown = [x for x in languages if x not in LANGUAGES]
            if unknown:
                raise ValueError(
                    f"SignDataModule: unknown languages {unknown} in `languages`; valid: {sorted(LANGUAGES)}"
                )
        if sampler not in SAMPLERS:
            raise ValueError(f"SignDataModule: sampler={sampler!r}; valid: {list(SAMPLERS)}")
        if balance_temperature <= 0:
            raise ValueError(f"SignDataModule: balance_temperature must be > 0, got {balance_temperature}")
        if batch_size <= 0 or (eval_batch_size is not None and eval_batch_size <= 0):
            raise ValueError(f"SignDataModule: batch sizes must be positive, got {batch_size}/{eval_batch_size}")
        self.language_filter = list(languages) if languages is not None else None
        self.normalization = normalization
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.processing = TemporalProcessing(min_len, max_len, unit_len, apply_fps_cap)
        self.random_crop = random_crop
        self.sampler = sampler
        self.balance_temperature = balance_temperature
        self.split_names = {"train": train_split, "val": val_split, "test": test_split}
        self.val_max_samples = val_max_samples
        self.seed = seed
        if code_unit < 1 or not 0.0 <= code_drop_prob <= 1.0:
            raise ValueError(f"SignDataModule: code_unit must be >= 1 and code_drop_prob in [0, 1], got "
                             f"{code_unit} and {code_drop_prob}")
        if token_cache is None and (tokenizer_hash is not None or code_unit > 1 or code_drop_prob > 0):
            raise ValueError("SignDataModule: tokenizer_hash / code_unit / code_drop_prob need a token_cache "
                             "(from `soke encode`)")
        self.token_cache_path = None if token_cache is None else str(token_cache)
        self.expected_tokenizer_hash = tokenizer_hash
        self.code_unit = code_unit
        self.code_drop_prob = code_drop_prob
        self._token_cache: TokenCache | None = None
        self._normalizer: Normalizer | None = None
        self.datasets: dict[str, SignDataset] = {}

    # -- stores, statistics, languages -------------------------------------------------------------------------

    def _open_stores(self) -> list[PackedStore]:
        if self._stores is None:
            self._stores = [open_store(path) for path in self.stores]
        return self._stores

    @property
    def normalizer(self) -> Normalizer:
        """The feature normaliser (loaded on first use from ``normalization`` or the first store)."""
        if self._normalizer is None:
            path = Path(self.normalization) if self.normalization else Path(self.stores[0]) / STATS_FILE
            if not path.exists():
                raise FileNotFoundError(
                    f"normalisation statistics {path} do not exist"
                    + ("" if self.normalization else " (the default is <first store>/normalization.pt)")
                    + f"; compute them with `soke data stats {self.stores[0]}` or set `normalization` to a file "
                    "or to a directory with the official mean.pt/std.pt"
                )
            self._normalizer = Normalizer.from_file(path, self.feature_layout)
        return self._normalizer

    @property
    def feature_layout(self) -> FeatureLayout:
        """The stores' feature layout (every store must have the same one; the error names both)."""
        stores = self._open_stores()
        for store in stores[1:]:
            check_same_layout(store.layout, f"store {store.root}", stores[0].layout, f"store {stores[0].root}")
        return stores[0].layout

    @property
    def languages(self) -> list[str]:
        """Language keys served, in registry order: the ``languages`` filter, or every language of the stores."""
        if self.language_filter is not None:
            return [k for k in LANGUAGES if k in self.language_filter]
        found: set[str] = set()
        for store in self._open_stores():
            for split in self.split_names.values():
                if split in store:
                    found.update(store.split(split).langs)
        return [k for k in LANGUAGES if k in found] + sorted(found - set(LANGUAGES))

    @property
    def token_cache(self) -> TokenCache | None:
        """The opened token cache (None without ``token_cache``); checked against ``tokenizer_hash`` when given."""
        if self.token_cache_path is not None and self._token_cache is None:
            self._token_cache = open_token_cache(self.token_cache_path, self.expected_tokenizer_hash)
        return self._token_cache

    def check_token_cache(self, expected_hash: str) -> None:
        """Refuse a token cache made by another tokenizer than the one with ``expected_hash`` (the LM stage's).

        Raises:
            TokenCacheError naming both hashes and the fix.
        """
        if self.token_cache_path is not None:
            open_token_cache(self.token_cache_path, expected_hash)

    def texts(self, stage: str = "train") -> list[str]:
        """Sentences of a split's items, in item order (e.g. to train the embedded text tokenizer)."""
        ds = self._dataset(stage)
        return [ds.record(i)["text"] for i in range(len(ds))]

    def code_lengths(self, stage: str = "train") -> list[tuple[str, str, int]]:
        """``(sentence, language, number of time codes)`` of a split's items from the token cache, in item order
        (e.g. what ``LMStage`` learns its ``length_cap`` ratios from). Needs ``token_cache``."""
        if self.token_cache_path is None:
            raise ValueError("SignDataModule.code_lengths reads the token cache; give token_cache (`soke encode` "
                             "output)")
        ds = self._dataset(stage)
        return [(ds.record(i)["text"], ds.record(i)["lang"], int(ds.tokens[key].shape[0]))
                for i, key in enumerate(ds.keys)]

    def _build(self, stage: str) -> SignDataset:
        split = self.split_names[stage]
        cache = self.token_cache
        train = stage == "train"
        ds = SignDataset(
            [store.split(split) for store in self._open_stores()],
            normalizer=self.normalizer,
            processing=self.processing,
            languages=self.language_filter,
            random_crop=self.random_crop and train,
            tokens=None if cache is None else cache.split(stage),
            code_unit=self.code_unit if train else 1,
            code_drop_prob=self.code_drop_prob if train else 0.0,
        )
        if len(ds) == 0:
            raise ValueError(
                f"SignDataModule: split {split!r} of {self.stores} has no sample"
                + (f" of languages {self.language_filter}" if self.language_filter else "")
            )
        if self.language_filter:
            missing = sorted(set(self.language_filter) - set(ds.langs))
            if missing:
                raise ValueError(
                    f"SignDataModule: languages {missing} were requested but split {split!r} of {self.stores} "
                    f"has only {sorted(set(ds.langs))}"
                )
        if stage == "val" and self.val_max_samples is not None and len(ds) > self.val_max_samples:
            ds = ds.subset(stratified_subset(ds.langs, self.val_max_samples))
        log.info("%s split %r: %d samples from %d store(s)", stage, split, len(ds), len(self.stores))
        return ds

    def setup(self, stage: str | None = None) -> None:
        """Open the splits the given Lightning stage needs (fit: train + val; validate: val; test/predict: test)."""
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for name in wanted.get(stage, ("train", "val", "test")) if stage else ("train", "val", "test"):
            if name not in self.datasets:
                self.datasets[name] = self._build(name)

    def _dataset(self, name: str) -> SignDataset:
        if name not in self.datasets:
            self.datasets[name] = self._build(name)
        return self.datasets[name]

    # -- loaders ------------------------------------------------------------------------------------------------

    def _loader(self, ds: SignDataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_sampler(self, ds: SignDataset):
        """The training sampler (None for "sequential", where Lightning adds its non-shuffling one under DDP)."""
        if self.sampler == "balanced":
            return LanguageBalancedSampler(ds.langs, temperature=self.balance_temperature, seed=self.seed)
        if self.sampler == "shuffle":
            world, rank = world_and_rank()
            return DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return None

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        sampler = self.train_sampler(ds)
        if sampler is not None and self.trainer is not None:
            # exact mid-epoch resume: skip the batches a restored checkpoint already trained this epoch
            progress = self.trainer.fit_loop.epoch_loop.batch_progress
            sampler = SkipTrainedBatches(sampler, self.batch_size, lambda: progress.current.ready)
        return self._loader(ds, self.batch_size, sampler=sampler, shuffle=False)

    def _eval_loader(self, ds: SignDataset) -> DataLoader:
        """Ordered loader; under DDP every sample goes to exactly one rank (shards may differ by one sample).

        Lightning's default DistributedSampler pads the shards with repeated samples, which sum-state metrics
        (stage 1's frame sums) would count twice. An unrepeated sampler is a DistributedSampler, so Lightning
        leaves it in place; evaluation needs no per-step collective, so uneven shards are safe.
        """
        world, rank = world_and_rank()
        sampler = UnrepeatedDistributedSampler(ds, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        return self._loader(ds, self.eval_batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self._dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self._dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self._dataset("test"))


#: SignDataModule arguments that decide how samples are processed (what a trained model saw), as saved in a
#: Lightning checkpoint's ``datamodule_hyper_parameters``.
PROCESSING_ARGS = ("languages", "normalization", "min_len", "max_len", "unit_len", "apply_fps_cap")


def checkpoint_processing(ckpt: dict) -> dict:
    """The :data:`PROCESSING_ARGS` a checkpoint's DataModule was built with (those it recorded), to rebuild a
    :class:`SignDataModule` that processes samples the same way for offline evaluation."""
    saved = ckpt.get("datamodule_hyper_parameters") or {}
    return {k: saved[k] for k in PROCESSING_ARGS if k in saved}


#: The splits `soke encode` encodes by default (each only where a store has it).
DEFAULT_SPLITS = ("train", "val", "test", "dictionary")


def split_datasets(dm: SignDataModule, splits: Sequence[str]) -> dict[str, SignDataset]:
    """One :class:`SignDataset` per requested split over all of ``dm``'s stores, with its processing and statistics.

    Split names are the DataModule's (train/val/test map to its train_split/val_split/test_split). A split of
    :data:`DEFAULT_SPLITS` that no store has is skipped (logged); any other missing split is an error.
    """
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
