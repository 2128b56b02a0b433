"""SignDataModule / SignDataset / LanguageBalancedSampler on small stores of three corpora."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from soke_lightning.core.layout import FEATURE_FROM_RAW, RAW_DIM
from soke_lightning.data.datamodule import SignDataModule, collate, stratified_subset
from soke_lightning.data.normalization import STATS_FILE, compute_stats, load_stats, save_stats
from soke_lightning.data.processing import fps_cap_indices, length_indices
from soke_lightning.data.sampler import LanguageBalancedSampler, allocate, language_weights
from soke_lightning.data.store import Sample, StoreWriter, open_store

HERE = Path(__file__).resolve().parent

# (corpus, lang, fps choices) per store; sample counts per split
H2S = {"corpus": "how2sign", "lang": "asl", "fps": (30.0, 24.0, 29.97)}
MIXED = ({"corpus": "csl_daily", "lang": "csl", "fps": (30.0,)}, {"corpus": "phoenix14t", "lang": "dgs", "fps": (25.0,)})


def _frames(rng: np.random.Generator, length: int) -> np.ndarray:
    return (rng.normal(size=(length, RAW_DIM)) * 0.3 + rng.normal(size=RAW_DIM)).astype(np.float32)


def write_test_stores(root: Path, n_asl: int = 12, n_csl: int = 6, n_dgs: int = 3, seed: int = 0) -> list[str]:
    """Two stores: how2sign (asl) and csl_daily + phoenix14t (csl, dgs); lengths 10..500; stats in the first.

    Each store also holds one fixed 200-frame sample at 30 fps (``*_fixed200``) in its train split.
    """
    rng = np.random.default_rng(seed)
    plan = {
        "h2s": [(H2S, {"train": n_asl, "val": 4, "test": 4})],
        "mixed": [(MIXED[0], {"train": n_csl, "val": 4, "test": 2}), (MIXED[1], {"train": n_dgs, "val": 2, "test": 2})],
    }
    paths = []
    for store_name, parts in plan.items():
        path = root / store_name
        writer = StoreWriter(path, {"test": store_name})
        for split in ("train", "val", "test"):
            with writer.split(split) as out:
                for spec, counts in parts:
                    for k in range(counts[split]):
                        length = int(rng.integers(10, 501))
                        fps = float(rng.choice(spec["fps"]))
                        out.add(Sample(f"{spec['corpus']}_{split}_{k:03d}", f"{spec['lang']} sentence {k}",
                                       spec["lang"], spec["corpus"], _frames(rng, length), fps))
                    if split == "train":
                        out.add(Sample(f"{spec['corpus']}_fixed200", "fixed", spec["lang"], spec["corpus"],
                                       _frames(rng, 200), 30.0))
        paths.append(str(path))
    first = open_store(paths[0]).split("train")
    mean, std, n = compute_stats(s.frames for s in first)
    save_stats(Path(paths[0]) / STATS_FILE, mean, std, n, "test")
    return paths


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[str]:
    return write_test_stores(tmp_path_factory.mktemp("stores"))


def _names(loader) -> list[str]:
    return [n for batch in loader for n in batch.name]


def test_batches_are_shaped_padded_and_normalised(stores):
    dm = SignDataModule(stores, batch_size=4, sampler="sequential")
    dm.setup("fit")
    mean, std = load_stats(Path(stores[0]) / STATS_FILE)
    mean, std = mean[FEATURE_FROM_RAW], std[FEATURE_FROM_RAW]
    splits = {s: open_store(s).split("train") for s in stores}
    seen = []
    for batch in dm.train_dataloader():
        B, T, D = batch.poses.shape
        assert D == 133 and T % 4 == 0 and B == len(batch.name) == len(batch.text) == len(batch.lang)
        assert int(batch.lengths.max()) == T
        assert torch.all((batch.lengths >= 40) & (batch.lengths <= 400) & (batch.lengths % 4 == 0))
        assert torch.equal(batch.mask, torch.arange(T)[None] < batch.lengths[:, None])
        assert torch.count_nonzero(batch.poses[~batch.mask]) == 0
        for i, name in enumerate(batch.name):
            split = next(sp for sp in splits.values() if name in sp.names)
            sample = split.by_name(name)
            cap = 24.0 if sample.corpus == "how2sign" else None
            capped = fps_cap_indices(sample.num_frames, sample.fps, cap)
            idx = capped[length_indices(capped.size)]
            expected = (torch.from_numpy(sample.frames[idx][:, FEATURE_FROM_RAW]) - mean) / (std + 1e-10)
            L = int(batch.lengths[i])
            assert L == idx.size
            assert torch.equal(batch.poses[i, :L], expected)  # same float32 arithmetic as Normalizer
        seen += batch.name
    # sequential = stores in the given order, each in its stored order (the reference's order)
    assert seen == splits[stores[0]].names + splits[stores[1]].names
    assert dm.languages == ["asl", "csl", "dgs"]


def test_fps_cap_is_per_corpus_and_switchable(stores):
    def length_of(dm, name):
        ds = dm.datasets["train"]
        return ds[ds.names.index(name)].poses.shape[0]

    dm = SignDataModule(stores)
    dm.setup("fit")
    assert length_of(dm, "how2sign_fixed200") == 160  # int(24 * 200 / 30)
    assert length_of(dm, "csl_daily_fixed200") == 200  # CSL-Daily is not resampled
    ds = dm.datasets["train"]
    assert ds[ds.names.index("how2sign_fixed200")].fps == 24.0
    dm = SignDataModule(stores, apply_fps_cap=False)
    dm.setup("fit")
    assert length_of(dm, "how2sign_fixed200") == 200


def test_shuffle_is_seeded_and_changes_every_epoch(stores):
    def order(seed, epoch):
        dm = SignDataModule(stores, batch_size=5, seed=seed)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return _names(loader)

    e0, e1 = order(3, 0), order(3, 1)
    ref = sorted(n for s in stores for n in open_store(s).split("train").names)
    assert sorted(e0) == sorted(e1) == ref
    assert e0 != e1 and e0 != ref
    assert order(3, 0) == e0
    assert order(4, 0) != e0


def test_balanced_sampler_proportions_follow_temperature(stores):
    dm = SignDataModule(stores, sampler="balanced", balance_temperature=1.0, seed=1)
    dm.setup("fit")
    ds = dm.datasets["train"]
    counts = Counter(ds.langs)  # asl 13, csl 7, dgs 4
    sampler = dm.train_dataloader().sampler
    assert isinstance(sampler, LanguageBalancedSampler)
    drawn = sampler.epoch_indices(0)
    # T = 1 over one dataset-sized epoch is a permutation of the dataset
    assert sorted(drawn.tolist()) == list(range(len(ds)))
    uniform = SignDataModule(stores, sampler="balanced", balance_temperature=1e6, seed=1)
    uniform.setup("fit")
    per_lang = Counter(ds.langs[i] for i in uniform.train_dataloader().sampler.epoch_indices(0))
    assert sorted(per_lang.values()) == [8, 8, 8]  # 24 slots over 3 languages
    # a small language is repeated only after all its samples were used
    dgs = [i for i in uniform.train_dataloader().sampler.epoch_indices(0) if ds.langs[i] == "dgs"]
    assert set(Counter(dgs).values()) == {2} and len(set(dgs)) == counts["dgs"]


def test_language_weights_and_allocation():
    w1 = language_weights({"a": 90, "b": 10}, 1.0)
    assert w1["a"] == pytest.approx(0.9) and w1["b"] == pytest.approx(0.1)
    w2 = language_weights({"a": 90, "b": 10}, 2.0)
    assert w2["a"] == pytest.approx(3 / 4)  # sqrt(90) / (sqrt(90) + sqrt(10)) = 3 / 4
    winf = language_weights({"a": 90, "b": 10}, math.inf)
    assert winf == {"a": 0.5, "b": 0.5}
    assert allocate(10, {"a": 0.55, "b": 0.45}) in ({"a": 6, "b": 4}, {"a": 5, "b": 5})
    assert sum(allocate(101, language_weights({"a": 7, "b": 3, "c": 1}, 3.0)).values()) == 101
    with pytest.raises(ValueError, match="temperature"):
        language_weights({"a": 1}, 0.0)


def test_balanced_sampler_shards_are_disjoint_and_epoch_seeded():
    langs = ["a"] * 11 + ["b"] * 5 + ["c"] * 2
    full = LanguageBalancedSampler(langs, temperature=3.0, seed=7, num_replicas=1, rank=0)
    shards = [list(LanguageBalancedSampler(langs, temperature=3.0, seed=7, num_replicas=4, rank=r)) for r in range(4)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == math.ceil(18 / 4)
    epoch = LanguageBalancedSampler(langs, temperature=3.0, seed=7, num_replicas=4, rank=0).epoch_indices()
    assert [epoch[r::4].tolist() for r in range(4)] == shards
    full.set_epoch(1)
    e1 = list(full)
    full.set_epoch(0)
    assert list(full) != e1 and len(full) == 18


def test_language_filter(stores):
    dm = SignDataModule(stores, languages=["dgs", "asl"])
    dm.setup("fit")
    assert set(dm.datasets["train"].langs) == {"asl", "dgs"} and set(dm.datasets["val"].langs) == {"asl", "dgs"}
    assert dm.languages == ["asl", "dgs"]
    with pytest.raises(ValueError, match=r"unknown languages \['xx'\].*valid: \['asl', 'csl', 'dgs'\]"):
        SignDataModule(stores, languages=["xx"])
    with pytest.raises(ValueError, match=r"languages \['dgs'\] were requested"):
        SignDataModule(stores[:1], languages=["asl", "dgs"], normalization=str(Path(stores[0]) / STATS_FILE)).setup("fit")


def test_val_subset_is_stratified_and_deterministic(stores):
    dm = SignDataModule(stores, val_max_samples=6)
    dm.setup("validate")
    names = _names(dm.val_dataloader())
    assert Counter(dm.datasets["val"].langs) == {"asl": 2, "csl": 2, "dgs": 2}
    dm2 = SignDataModule(stores, val_max_samples=6)
    dm2.setup("validate")
    assert _names(dm2.val_dataloader()) == names
    # a small language gives its unused share to the others
    picked = stratified_subset(["a"] * 10 + ["b"], 5)
    assert len(picked) == 5 and 10 in picked and picked == sorted(picked)


def test_eval_and_predict_read_their_splits(stores):
    dm = SignDataModule(stores, batch_size=2, eval_batch_size=3)
    dm.setup("test")
    test_names = _names(dm.test_dataloader())
    assert test_names == [n for s in stores for n in open_store(s).split("test").names]
    assert _names(dm.predict_dataloader()) == test_names
    assert dm.test_dataloader().batch_size == 3


def test_missing_statistics_error_names_path_and_command(tmp_path, stores):
    dm = SignDataModule(stores[1:])
    with pytest.raises(FileNotFoundError, match=r"mixed/normalization.pt.*soke data stats"):
        dm.setup("fit")


def test_dataset_pickles_without_frames_and_works_in_workers(stores):
    dm = SignDataModule(stores, batch_size=4, num_workers=1, sampler="sequential")
    dm.setup("fit")
    ds = dm.datasets["train"]
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 100_000  # the memory maps are re-opened, not copied
    torch.testing.assert_close(clone[3].poses, ds[3].poses)
    assert _names(dm.train_dataloader()) == ds.names


def test_random_crop_only_in_training(stores):
    dm = SignDataModule(stores, random_crop=True, apply_fps_cap=False)
    dm.setup("fit")
    train = dm.datasets["train"]
    # a sample between 40 and 400 frames whose length is not a multiple of 4 has slack for the crop offset
    j = next(j for j in range(len(train)) if 40 < train.record(j)["length"] < 400 and train.record(j)["length"] % 4)
    torch.manual_seed(0)
    firsts = {float(train[j].poses[0, 0]) for _ in range(40)}
    assert len(firsts) > 1
    assert dm.datasets["val"].random_crop is False
    centre = SignDataModule(stores, apply_fps_cap=False)
    centre.setup("fit")
    assert len({float(centre.datasets["train"][j].poses[0, 0]) for _ in range(5)}) == 1


def test_collate_rejects_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        collate([])


@pytest.mark.ddp
def test_ddp_two_processes_see_disjoint_shards(tmp_path):
    stores = write_test_stores(tmp_path / "stores", n_asl=9, n_csl=5, n_dgs=3)  # 20 training samples (+1 fixed each)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(HERE.parent / "src")}
    env.pop("MASTER_PORT", None)
    proc = subprocess.run(
        [sys.executable, str(HERE / "scripts" / "ddp_datamodule.py"), str(out), *stores],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    all_names = sorted(n for s in stores for n in open_store(s).split("train").names)
    for mode in ("shuffle", "balanced"):
        ranks = [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(2)]
        for epoch in ("0", "1"):
            a, b = ranks[0][epoch], ranks[1][epoch]
            assert len(a) == len(b) == 10
            assert not set(a) & set(b), f"{mode} epoch {epoch}: ranks share samples"
            assert sorted(a + b) == all_names
        assert ranks[0]["0"] != ranks[0]["1"], f"{mode}: rank 0 saw the same order in both epochs"
    # a high temperature oversamples: the shards still partition the sampler's epoch list
    ranks = [json.loads((out / f"balanced_t8_rank{r}.json").read_text()) for r in range(2)]
    ds_names = ranks[0]["dataset"]
    langs = ranks[0]["langs"]
    expected = LanguageBalancedSampler(langs, temperature=8.0, seed=5, num_replicas=1, rank=0).epoch_indices(0)
    assert ranks[0]["0"] == [ds_names[i] for i in expected[0::2]]
    assert ranks[1]["0"] == [ds_names[i] for i in expected[1::2]]
