"""The token cache: every sample's tokenizer codes ([L, P], L = T / 4), written by `soke encode`, read by stage 2.

Layout::

    CACHE/manifest.json          {"format": "soke-token-cache", "version": 1, "tokenizer_hash": sha256,
                                  "tokenizer": path it was made from, "parts": [...], "codebook_sizes": {...},
                                  "downsample_rate": 4, "sources": [store paths], "processing": {...},
                                  "splits": {split: {"samples": n, "steps": total_L, "dtype": "int16"}}}
    CACHE/<split>/codes.npy      int16 (or int32 when a codebook exceeds 32767) [total_L, P], samples back to back
    CACHE/<split>/index.jsonl    one record per sample: key ("corpus/name"), name, corpus, lang, offset, length

The cache is tied to ONE tokenizer: :func:`open_token_cache` with ``expected_hash`` (from
:func:`soke_lightning.models.tokenizer.tokenizer_hash`) refuses a cache made by another tokenizer, naming both
hashes. Splits are written into a hidden folder and renamed into place; the manifest is replaced last, atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soke_lightning.core.errors import SokeError
from soke_lightning.core.io import atomic_write_json

CACHE_FORMAT = "soke-token-cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"


class TokenCacheError(SokeError, RuntimeError):
    """A token cache is missing, incomplete, or was made by another tokenizer."""


def code_dtype(codebook_sizes: dict[str, int]) -> np.dtype:
    return np.dtype("<i2") if max(codebook_sizes.values()) <= np.iinfo(np.int16).max else np.dtype("<i4")


class TokenCacheWriter:
    """Writes a cache split by split.

    Args:
        root: cache directory (created).
        tokenizer_hash: fingerprint of the tokenizer that produced the codes.
        parts: part names, in code column order.
        codebook_sizes: codes per part (codes are checked against them).
        downsample_rate: frames per code step.
        info: extra manifest entries (tokenizer path, source stores, processing).
    """

    def __init__(self, root: str | os.PathLike, tokenizer_hash: str, parts: list[str],
                 codebook_sizes: dict[str, int], downsample_rate: int, info: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = {
            "format": CACHE_FORMAT, "version": CACHE_VERSION, "tokenizer_hash": tokenizer_hash,
            "parts": list(parts), "codebook_sizes": {p: int(codebook_sizes[p]) for p in parts},
            "downsample_rate": int(downsample_rate), "splits": {}, **(info or {}),
        }
        self.dtype = code_dtype(self.manifest["codebook_sizes"])
        self._limits = np.array([codebook_sizes[p] for p in parts])

    def write_split(self, split: str, records: list[dict], codes: list[np.ndarray]) -> None:
        """Write one split: ``records[i]`` (key, name, corpus, lang) and ``codes[i]`` [L_i, P]."""
        if len(records) != len(codes):
            raise ValueError(f"split {split!r}: {len(records)} records but {len(codes)} code arrays")
        keys = [r["key"] for r in records]
        if len(set(keys)) != len(keys):
            raise ValueError(f"split {split!r}: duplicate sample keys in the token cache")
        tmp = self.root / f".tmp-{split}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        offset = 0
        with open(tmp / "index.jsonl", "w", encoding="utf-8") as index:
            for record, c in zip(records, codes):
                c = np.asarray(c)
                if c.ndim != 2 or c.shape[1] != len(self._limits):
                    raise ValueError(f"{record['key']}: codes must be [L, {len(self._limits)}], got {c.shape}")
                if c.size and (c.min() < 0 or (c >= self._limits).any()):
                    raise ValueError(f"{record['key']}: codes outside the codebooks {self.manifest['codebook_sizes']}")
                index.write(json.dumps({**record, "offset": offset, "length": int(c.shape[0])},
                                       ensure_ascii=False, sort_keys=True) + "\n")
                offset += int(c.shape[0])
        stacked = np.concatenate(codes).astype(self.dtype) if codes else np.zeros((0, len(self._limits)), self.dtype)
        np.save(tmp / "codes.npy", stacked)
        final = self.root / split
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.manifest["splits"][split] = {"samples": len(records), "steps": offset, "dtype": self.dtype.name}
        atomic_write_json(self.root / MANIFEST, self.manifest)


@dataclass
class TokenSplit:
    """Codes of one split: ``split[key] -> [L, P]`` int64 array; ``keys`` in file order."""

    name: str
    codes: np.ndarray
    records: list[dict]

    def __post_init__(self):
        self._by_key = {r["key"]: i for i, r in enumerate(self.records)}

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    @property
    def keys(self) -> list[str]:
        return [r["key"] for r in self.records]

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            r = self.records[self._by_key[key]]
        except KeyError:
            raise KeyError(f"sample {key!r} is not in token-cache split {self.name!r} ({len(self)} samples); "
                           f"re-run `soke encode` on the same stores") from None
        return np.asarray(self.codes[r["offset"]:r["offset"] + r["length"]], dtype=np.int64)


class TokenCache:
    """An opened cache (see module docstring)."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest["tokenizer_hash"]

    @property
    def parts(self) -> list[str]:
        return list(self.manifest["parts"])

    @property
    def codebook_sizes(self) -> dict[str, int]:
        return dict(self.manifest["codebook_sizes"])

    @property
    def downsample_rate(self) -> int:
        return int(self.manifest["downsample_rate"])

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.manifest["splits"])

    def split(self, name: str) -> TokenSplit:
        if name not in self.manifest["splits"]:
            raise TokenCacheError(f"{self.root}: no split {name!r} in the token cache (has {list(self.splits)})")
        folder = self.root / name
        records = [json.loads(line) for line in (folder / "index.jsonl").read_text(encoding="utf-8").splitlines()]
        return TokenSplit(name, np.load(folder / "codes.npy", mmap_mode="r"), records)


def open_token_cache(path: str | os.PathLike, expected_hash: str | None = None) -> TokenCache:
    """Open a cache; with ``expected_hash`` refuse one made by another tokenizer.

    Raises:
        TokenCacheError naming the path and, on a mismatch, both hashes and the fix.
    """
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise TokenCacheError(f"{root} is not a token cache: {manifest_path} is missing. Create it with "
                              f"`soke encode --tokenizer CKPT --data DATAMODULE_YAML --out {root}`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != CACHE_FORMAT or manifest.get("version") != CACHE_VERSION:
        raise TokenCacheError(f"{manifest_path}: format {manifest.get('format')!r} v{manifest.get('version')!r}, "
                              f"expected {CACHE_FORMAT!r} v{CACHE_VERSION}")
    if expected_hash is not None and manifest["tokenizer_hash"] != expected_hash:
        raise TokenCacheError(
            f"{root} was made by another tokenizer: cache tokenizer hash {manifest['tokenizer_hash']} "
            f"(from {manifest.get('tokenizer', '?')}) != expected {expected_hash}. Re-run `soke encode` with the "
            f"tokenizer checkpoint this stage uses, or point to the matching cache."
        )
    return TokenCache(root, manifest)
