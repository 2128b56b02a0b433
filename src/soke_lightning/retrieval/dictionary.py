"""Sign dictionaries for retrieval: word -> one or more per-part code sequences, per language (SOKE_SPEC §5.1).

A :class:`SignDictionary` is tied to ONE stage-1 tokenizer: its codes only mean something to the tokenizer that
produced them, so the file records that tokenizer's hash (:func:`soke_lightning.models.tokenizer.tokenizer_hash`)
and :meth:`SignDictionary.check_tokenizer` refuses any other. File format (one JSON file, written atomically)::

    {"format": "soke-sign-dictionary", "version": 1,
     "tokenizer_hash": "<sha256>" | "official-import",
     "parts": ["body", "lhand", "rhand"], "codebook_sizes": {"body": 96, "lhand": 192, "rhand": 192},
     "info": {...how it was made...},
     "entries": {"asl": {"take off": [{"body": [...], "lhand": [...], "rhand": [...]}, ...], ...}, "csl": {...}}}

Words are stored normalised (:func:`normalize_word`: NFKC, lower case, single spaces); several exemplars of a word
are kept in the order they were added, and retrieval uses the first. Three ways to make one:

* :func:`build_dictionary` (``soke dict build``): encode an isolated-sign store split (SynthSign's
  ``dictionary`` split, or any split whose samples are single words/phrases) with the frozen tokenizer;
* :func:`import_word2code` (``soke dict import``): read the official ``word2code.json``; its hash is
  :data:`OFFICIAL_IMPORT_HASH` unless a tokenizer is given to bind it;
* by hand with :meth:`SignDictionary.add` (tests, custom sources).
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soke_lightning.data.languages import LANGUAGES

log = logging.getLogger(__name__)

DICT_FORMAT = "soke-sign-dictionary"
DICT_VERSION = 1
#: Hash of a dictionary imported from word2code.json without naming the tokenizer its codes belong to.
OFFICIAL_IMPORT_HASH = "official-import"
#: Parts and codebook sizes of the official DETO tokenizer (SOKE_SPEC §3.1), used to validate official imports.
OFFICIAL_PARTS = ("body", "lhand", "rhand")
OFFICIAL_CODEBOOK_SIZES = {"body": 96, "lhand": 192, "rhand": 192}

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


class DictionaryError(RuntimeError):
    """A dictionary file is missing, malformed or inconsistent."""


class DictionaryMismatchError(DictionaryError):
    """A dictionary was made by another tokenizer than the one in use."""


def normalize_word(word: str) -> str:
    """The stored form of a dictionary key: NFKC, lower case, surrounding space stripped, inner space collapsed."""
    return " ".join(unicodedata.normalize("NFKC", word).lower().split())


def has_cjk(word: str) -> bool:
    """True when ``word`` contains a CJK ideograph (the official dictionary's Chinese section)."""
    return _CJK.search(word) is not None


def _atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class SignDictionary:
    """Per-language word -> exemplar code sequences, bound to one tokenizer.

    Attributes:
        tokenizer_hash: hash of the tokenizer that produced the codes (or :data:`OFFICIAL_IMPORT_HASH`).
        parts: part names, the column order of every code array.
        codebook_sizes: codes per part; every stored code is checked against it.
        entries: language key -> normalised word -> exemplars, each an int64 array [L, P].
        info: free-form provenance (source files, tokenizer path, counts).
        path: the file it was loaded from / saved to, if any.
    """

    tokenizer_hash: str
    parts: tuple[str, ...]
    codebook_sizes: dict[str, int]
    entries: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        self.parts = tuple(self.parts)
        self.codebook_sizes = {p: int(self.codebook_sizes[p]) for p in self.parts}
        self._limits = np.array([self.codebook_sizes[p] for p in self.parts])

    # ------------------------------------------------------------------------------------------------ content
    def add(self, lang: str, word: str, codes) -> str:
        """Add one exemplar of ``word`` in language ``lang``.

        Args:
            lang: a registered language key ("asl", "csl", "dgs").
            word: the spoken word or phrase (normalised with :func:`normalize_word`).
            codes: [L, P] integer codes (L >= 1) or a dict part -> [L] codes.

        Returns:
            The normalised key the exemplar was stored under.
        """
        if lang not in LANGUAGES:
            raise KeyError(f"dictionary entry {word!r}: unknown language {lang!r}; valid: {sorted(LANGUAGES)}")
        key = normalize_word(word)
        if not key:
            raise ValueError(f"dictionary entry of language {lang!r}: empty word {word!r}")
        if isinstance(codes, dict):
            missing = [p for p in self.parts if p not in codes]
            if missing:
                raise ValueError(f"dictionary entry {word!r}: parts {missing} missing (has {sorted(codes)}, "
                                 f"expected {list(self.parts)})")
            lengths = {p: len(codes[p]) for p in self.parts}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"dictionary entry {word!r}: the parts have different code lengths {lengths}; "
                                 f"every part needs one code per time step")
            codes = np.stack([np.asarray(codes[p], dtype=np.int64) for p in self.parts], axis=1)
        arr = np.asarray(codes)
        if arr.ndim != 2 or arr.shape[1] != len(self.parts) or arr.shape[0] < 1:
            raise ValueError(f"dictionary entry {word!r}: codes must be [L >= 1, {len(self.parts)}] "
                             f"(parts {list(self.parts)}), got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"dictionary entry {word!r}: codes must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= self._limits)
        if bad.any():
            step, col = map(int, np.argwhere(bad)[0])
            raise ValueError(f"dictionary entry {word!r}: code {int(arr[step, col])} of part {self.parts[col]!r} "
                             f"at step {step} is outside its codebook [0, {int(self._limits[col])}); the codes were "
                             f"made by another tokenizer than the codebook sizes {self.codebook_sizes} say")
        self.entries.setdefault(lang, {}).setdefault(key, []).append(arr)
        return key

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages with at least one entry, in insertion order."""
        return tuple(lang for lang, words in self.entries.items() if words)

    def words(self, lang: str) -> list[str]:
        """The normalised words of ``lang`` in insertion order (empty when the language has none)."""
        return list(self.entries.get(lang, {}))

    def exemplars(self, lang: str, word: str) -> list[np.ndarray]:
        """Every exemplar [L, P] of ``word`` in ``lang``."""
        try:
            return self.entries[lang][normalize_word(word)]
        except KeyError:
            raise KeyError(f"no dictionary entry {word!r} in language {lang!r}") from None

    def __len__(self) -> int:
        return sum(len(words) for words in self.entries.values())

    def summary(self) -> dict:
        """Per language: words, exemplars, multi-word entries and code lengths (min / median / max)."""
        out = {}
        for lang in self.languages:
            words = self.entries[lang]
            lengths = np.array([len(e) for ex in words.values() for e in ex])
            out[lang] = {"words": len(words), "exemplars": int(lengths.size),
                         "multi_word": sum(" " in w for w in words),
                         "code_length": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                                         "max": int(lengths.max())}}
        return out

    # ------------------------------------------------------------------------------------------ the tokenizer
    def check_tokenizer(self, expected_hash: str, *, parts: Sequence[str] | None = None,
                        codebook_sizes: dict[str, int] | None = None, source: str = "the tokenizer in use") -> None:
        """Refuse this dictionary unless it was made by the tokenizer with ``expected_hash``.

        Raises:
            DictionaryMismatchError naming both hashes (and parts / codebook sizes) and the fix.
        """
        where = self.path or "<in memory>"
        if self.tokenizer_hash != expected_hash:
            hint = (" It was imported from word2code.json without binding it to a tokenizer: re-import it with "
                    "`soke dict import word2code.json --tokenizer CKPT --out DICT` if its codes come from that "
                    "tokenizer (the official one, via `soke import-official`)."
                    if self.tokenizer_hash == OFFICIAL_IMPORT_HASH else "")
            raise DictionaryMismatchError(
                f"sign dictionary {where} was made by another tokenizer: dictionary tokenizer hash "
                f"{self.tokenizer_hash} != {expected_hash} ({source}). Its codes would be meaningless to this model; "
                f"rebuild it with `soke dict build --tokenizer CKPT --data DATAMODULE_YAML --out DICT` using the "
                f"stage-1 checkpoint of this run.{hint}")
        if parts is not None and tuple(parts) != self.parts:
            raise DictionaryMismatchError(f"sign dictionary {where}: parts {list(self.parts)} != {list(parts)} "
                                          f"({source}); rebuild it with `soke dict build`")
        if codebook_sizes is not None and {p: int(k) for p, k in codebook_sizes.items()} != self.codebook_sizes:
            raise DictionaryMismatchError(f"sign dictionary {where}: codebook sizes {self.codebook_sizes} != "
                                          f"{dict(codebook_sizes)} ({source}); rebuild it with `soke dict build`")

    # ------------------------------------------------------------------------------------------------- files
    def to_json(self) -> dict:
        return {
            "format": DICT_FORMAT, "version": DICT_VERSION, "tokenizer_hash": self.tokenizer_hash,
            "parts": list(self.parts), "codebook_sizes": dict(self.codebook_sizes), "info": self.info,
            "entries": {lang: {w: [{p: ex[:, i].tolist() for i, p in enumerate(self.parts)} for ex in exemplars]
                               for w, exemplars in words.items()}
                        for lang, words in self.entries.items()},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to ``path`` (JSON) atomically."""
        path = Path(path)
        _atomic_write_json(path, self.to_json())
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expected_hash: str | None = None) -> SignDictionary:
        """Read a dictionary written by :meth:`save`; with ``expected_hash`` refuse one from another tokenizer.

        Raises:
            DictionaryError: the file is missing or not a dictionary (naming the file and the fix).
            DictionaryMismatchError: ``expected_hash`` differs from the recorded one.
        """
        path = Path(path)
        if not path.is_file():
            raise DictionaryError(f"sign dictionary {path} does not exist. Build one with `soke dict build "
                                  f"--tokenizer CKPT --data DATAMODULE_YAML --out {path}` or import the official one "
                                  f"with `soke dict import word2code.json --out {path}`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DictionaryError(f"sign dictionary {path} is not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != DICT_FORMAT:
            hint = (" It looks like the official word2code.json: convert it with `soke dict import`."
                    if isinstance(data, dict) and data and all(isinstance(v, dict) and "body" in v
                                                               for v in list(data.values())[:5]) else "")
            raise DictionaryError(f"{path}: format {data.get('format') if isinstance(data, dict) else None!r}, "
                                  f"expected {DICT_FORMAT!r}.{hint}")
        if data.get("version") != DICT_VERSION:
            raise DictionaryError(f"{path}: dictionary version {data.get('version')!r}, expected {DICT_VERSION}")
        for key in ("tokenizer_hash", "parts", "codebook_sizes", "entries"):
            if key not in data:
                raise DictionaryError(f"{path}: key {key!r} is missing from the dictionary file")
        out = cls(data["tokenizer_hash"], tuple(data["parts"]), data["codebook_sizes"], info=data.get("info", {}),
                  path=path)
        for lang, words in data["entries"].items():
            for word, exemplars in words.items():
                for ex in exemplars:
                    out.add(lang, word, ex)
        if expected_hash is not None:
            out.check_tokenizer(expected_hash)
        return out


# ------------------------------------------------------------------------------------------------------ import
def import_word2code(path: str | os.PathLike, *, lang: str | None = None, latin_lang: str | None = None,
                     tokenizer_hash: str | None = None, parts: Sequence[str] | None = None,
                     codebook_sizes: dict[str, int] | None = None) -> SignDictionary:
    """Read the official ``word2code.json`` (word -> {"body": [...], "lhand": [...], "rhand": [...]}).

    The file has no language field. Each entry's language is ``lang`` when given (the whole file is one
    language), else inferred: a word with a CJK ideograph is CSL, any other word goes to ``latin_lang`` (the
    official file mixes English and lower-cased German glosses, which cannot be told apart reliably).

    Args:
        path: the word2code.json file.
        lang: declare the language of every entry.
        latin_lang: language of the entries without CJK characters (required when such entries exist and
            ``lang`` is not given).
        tokenizer_hash: bind the dictionary to this tokenizer (default :data:`OFFICIAL_IMPORT_HASH`).
        parts / codebook_sizes: of that tokenizer (default: the official DETO's body/lhand/rhand, 96/192/192).

    Returns:
        The dictionary, entries in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DictionaryError(f"{path} does not exist (expected the official scripts/word2code.json)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DictionaryError(f"{path}: expected a JSON object word -> {{body, lhand, rhand}}, got {type(data).__name__}")
    for language in (lang, latin_lang):
        if language is not None and language not in LANGUAGES:
            raise KeyError(f"unknown language {language!r}; valid: {sorted(LANGUAGES)}")
    parts = tuple(parts or OFFICIAL_PARTS)
    sizes = dict(codebook_sizes or OFFICIAL_CODEBOOK_SIZES)
    out = SignDictionary(tokenizer_hash or OFFICIAL_IMPORT_HASH, parts, sizes,
                         info={"source": str(path.resolve()), "imported_from": "word2code.json",
                               "lang": lang, "latin_lang": latin_lang})
    for word, entry in data.items():
        if not isinstance(entry, dict):
            raise DictionaryError(f"{path}: entry {word!r} is {type(entry).__name__}, expected an object with "
                                  f"keys {list(parts)}")
        target = lang or ("csl" if has_cjk(word) else latin_lang)
        if target is None:
            raise DictionaryError(f"{path}: entry {word!r} has no CJK characters, so its language cannot be "
                                  f"inferred; pass --latin-lang asl|dgs (language of such entries) or --lang to "
                                  f"declare the language of every entry")
        try:
            out.add(target, word, entry)
        except ValueError as err:
            raise DictionaryError(f"{path}: {err}") from None
    log.info("imported %d entries from %s: %s", len(out), path, {k: len(v) for k, v in out.entries.items()})
    return out


# ------------------------------------------------------------------------------------------------------ build
def build_dictionary(tokenizer, datasets, *, tokenizer_hash: str, batch_size: int = 32, device=None,
                     renormalize=None, info: dict | None = None) -> SignDictionary:
    """Encode isolated signs with the frozen tokenizer: one exemplar per sample, keyed by the sample's text.

    Args:
        tokenizer: a :class:`~soke_lightning.models.tokenizer.SignTokenizer` (eval mode).
        datasets: :class:`~soke_lightning.data.datamodule.SignDataset` s of isolated signs (text = the word).
        tokenizer_hash: its hash, recorded in the dictionary.
        batch_size: samples per encoder batch (equal-length batches, as ``soke encode``).
        device: torch device of the tokenizer.
        renormalize: optional map from the datasets' normalisation to the tokenizer's.
        info: provenance recorded in the file.

    Returns:
        The dictionary; the codes of each sample are exactly ``tokenizer.encode`` of that sample alone.
    """
    import torch

    from soke_lightning.stages.encode import encode_dataset

    device = device or torch.device("cpu")
    out = SignDictionary(tokenizer_hash, tuple(tokenizer.parts), dict(tokenizer.codebook_sizes), info=dict(info or {}))
    for dataset in datasets:
        texts = {}
        for i in range(len(dataset)):
            r = dataset.record(i)
            texts[f"{r['corpus']}/{r['name']}"] = r["text"]
        records, codes = encode_dataset(tokenizer, dataset, batch_size, device, renormalize, desc="dictionary")
        order = {key: i for i, key in enumerate(texts)}
        # encode_dataset groups samples by length; restore dataset order so exemplar order is deterministic.
        for i in sorted(range(len(records)), key=lambda j: order[records[j]["key"]]):
            out.add(records[i]["lang"], texts[records[i]["key"]], codes[i])
    return out
