"""`soke encode` + token cache: codes [L, 3] with L = T / 4 for every split (dictionary too), hash recorded,
a cache from another tokenizer refused with both hashes named."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from soke_lightning.cli import encode
from soke_lightning.cli.lightning import build_datamodule
from soke_lightning.data.datamodule import split_datasets
from soke_lightning.data.token_cache import TokenCacheError, TokenCacheWriter, open_token_cache
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(width=16, code_dim=8, depth=1, codebook_sizes={"body": 8, "lhand": 16, "rhand": 16})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from test_stage1_stage import make_store

    return make_store(tmp_path_factory.mktemp("enc_store"), {"train": 3, "val": 1, "test": 1, "dictionary": 2})


@pytest.fixture(scope="module")
def tokenizer_ckpt(store, tmp_path_factory):
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY)
    tok.train()(torch.randn(4, 40, 133))  # initialise the codebooks from data
    tok.normalizer.load_state_dict({k: v for k, v in _normalizer(store).state_dict().items()})
    path = tmp_path_factory.mktemp("tok") / "tok.ckpt"
    tok.save_checkpoint(path)
    return path


def _normalizer(store):
    from soke_lightning.data.normalization import Normalizer

    return Normalizer.from_file(store / "normalization.pt")


def _run(store, ckpt, out, splits=None, preview=0):
    ns = argparse.Namespace(tokenizer=str(ckpt), data=str(ROOT / "datamodules" / "synthsign.yaml"), out=str(out),
                            splits=splits or list(encode.DEFAULT_SPLITS), set=[f"init_args.stores=[{store}]"],
                            batch_size=4, device="cpu", preview=preview, preview_out=None)
    return encode.run(ns)


def test_encode_exports_every_split_with_matching_codes(store, tokenizer_ckpt, tmp_path, capsys):
    assert _run(store, tokenizer_ckpt, tmp_path / "cache") == 0
    assert "dictionary" in capsys.readouterr().out
    tok = SignTokenizer.from_checkpoint(tokenizer_ckpt)
    cache = open_token_cache(tmp_path / "cache", expected_hash=tokenizer_hash(tokenizer_ckpt))
    assert set(cache.splits) == {"train", "val", "test", "dictionary"}
    assert cache.parts == ["body", "lhand", "rhand"] and cache.downsample_rate == 4
    assert cache.codebook_sizes == {"body": 8, "lhand": 16, "rhand": 16}
    dm = build_datamodule(str(ROOT / "datamodules" / "synthsign.yaml"), [f"init_args.stores=[{store}]"])
    datasets = split_datasets(dm, ["train", "dictionary"])
    for split, ds in datasets.items():
        tokens = cache.split(split)
        assert len(tokens) == len(ds) == {"train": 9, "dictionary": 6}[split]
        for i in range(len(ds)):
            item = ds[i]
            key = f"{item.corpus}/{item.name}"
            codes = tokens[key]
            assert codes.shape == (item.poses.shape[0] // 4, 3)  # L = T / 4, dictionary signs stretched to >= 40
            single = tok.encode(item.poses[None])[0].numpy()
            np.testing.assert_array_equal(codes, single)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["tokenizer_hash"] == tokenizer_hash(tokenizer_ckpt)
    assert manifest["splits"]["train"]["dtype"] == "int16"


def test_cache_from_another_tokenizer_is_refused(store, tokenizer_ckpt, tmp_path):
    _run(store, tokenizer_ckpt, tmp_path / "cache", splits=["val"], preview=1)
    gifs = list((tmp_path / "cache" / "preview").glob("*.gif"))
    assert len(gifs) == 1 and gifs[0].stat().st_size > 1000
    other = SignTokenizer(**TINY)
    other_hash = tokenizer_hash(other)
    with pytest.raises(TokenCacheError) as err:
        open_token_cache(tmp_path / "cache", expected_hash=other_hash)
    assert other_hash in str(err.value) and tokenizer_hash(tokenizer_ckpt) in str(err.value)
    with pytest.raises(TokenCacheError, match="soke encode"):
        open_token_cache(tmp_path / "missing")


def test_writer_checks_codes(tmp_path):
    writer = TokenCacheWriter(tmp_path, "h", ["body", "lhand"], {"body": 4, "lhand": 300}, 4)
    assert writer.dtype == np.int16
    rec = {"key": "c/a", "name": "a", "corpus": "c", "lang": "asl"}
    with pytest.raises(ValueError, match="outside the codebooks"):
        writer.write_split("train", [rec], [np.array([[4, 0]])])
    with pytest.raises(ValueError, match=r"\[L, 2\]"):
        writer.write_split("train", [rec], [np.zeros((3, 3), int)])
    writer.write_split("train", [rec], [np.array([[3, 299], [0, 1]])])
    split = open_token_cache(tmp_path).split("train")
    np.testing.assert_array_equal(split["c/a"], [[3, 299], [0, 1]])
    with pytest.raises(KeyError, match="c/b"):
        split["c/b"]
