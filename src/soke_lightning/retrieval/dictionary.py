"""Sign dictionaries for retrieval: word -> one or more per-part code sequences, per language (docs/design.md §5.1).

A :class:`SignDictionary` is tied to ONE stage-1 tokenizer: its codes only mean something to the tokenizer that
produced them, so the file records that tokenizer's hash (:func:`soke_lightning.models.tokenizer.tokenizer_hash`)
and :meth:`SignDictionary.check_tokenizer` refuses any other. File format (one JSON file, written atomically)::

    {"format": "soke-sign-dictionary", "version": 1,
     "tokenizer_hash": "<sha256>" | "official-import",
     "parts": ["body", "lhand", "rhand"], "codebook_sizes": {"body": 96, "lhand": 192, "rhand": 192},
     "info": {...how it was made...},
     "entries": {"asl": {"take off": [{"body": [...], "lhand": [...], "rhand": [...]}, ...], ...}, "csl": {...}},
     "aliases": {"asl": {"cup": ["cups"], "eat": ["eats", "ate"]}, "dgs": {...}}}   # optional

Words are stored normalised (:func:`normalize_word`: NFKC, lower case, single spaces); several exemplars of a word
are kept in the order they were added, and retrieval uses the first. An entry may carry *aliases*: other surface
forms of its word (plurals, conjugations, declensions; phrases too) that the ``words`` matcher treats like the key
itself; a hit through an alias retrieves the entry. An alias names one entry of its language; a key always wins
over an alias of another entry. Files without ``aliases`` (older dictionaries, official imports) have none. Three
ways to make one:

* :func:`build_dictionary` (``soke dict build``): encode an isolated-sign store split (SynthSign's
  ``dictionary`` split, or any split whose samples are single words/phrases) with the frozen tokenizer; a
  sample's ``meta["forms"]`` (SynthSign writes them) become the entry's aliases;
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

from soke_lightning.core.errors import RegistryKeyError, SokeError
from soke_lightning.core.io import atomic_write_json
from soke_lightning.core.languages import LANGUAGES, get_language
from soke_lightning.data.encoding import encode_dataset

log = logging.getLogger(__name__)

DICT_FORMAT = "soke-sign-dictionary"
DICT_VERSION = 1
#: Hash of a dictionary imported from word2code.json without naming the tokenizer its codes belong to.
OFFICIAL_IMPORT_HASH = "official-import"
#: Parts and codebook sizes of the official DETO tokenizer (docs/design.md §3.1), used to validate official imports.
OFFICIAL_PARTS = ("body", "lhand", "rhand")
OFFICIAL_CODEBOOK_SIZES = {"body": 96, "lhand": 192, "rhand": 192}

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


class DictionaryError(SokeError, RuntimeError):
    """A dictionary file is missing, malformed or inconsistent."""


class DictionaryMismatchError(DictionaryError):
    """A dictionary was made by another tokenizer than the one in use."""


def normalize_word(word: str) -> str:
    """The stored form of a dictionary key: NFKC, lower case, surrounding space stripped, inner space collapsed."""
    return " ".join(unicodedata.normalize("NFKC", word).lower().split())


def has_cjk(word: str) -> bool:
    """True when ``word`` contains a CJK ideograph (the official dictionary's Chinese section)."""
    return _CJK.search(word) is not None


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
        aliases: language key -> normalised word -> its normalised aliases (other surface forms), in the order
            they were added (see :meth:`add_alias`).
    """

    tokenizer_hash: str
    parts: tuple[str, ...]
    codebook_sizes: dict[str, int]
    entries: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    path: Path | None = None
    aliases: dict[str, dict[str, list[str]]] = field(default_factory=dict)

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
            raise RegistryKeyError(f"dictionary entry {word!r}: unknown language {lang!r}; valid languages: "
                                   f"{', '.join(sorted(LANGUAGES))}")
        key = normalize_word(word)
        if not key:
            raise ValueError(f"dictionary entry of language {lang!r}: empty word {word!r}")
        if isinstance(codes, dict):
            missing = [p for p in self.parts if p not in codes]
            if missing:
                raise ValueError(f"dictionary entry {word!r}: parts {missing} missing (has {sorted(codes)}, "
                                 f"expected {list(self.parts)})")
            for p in self.parts:
                if not isinstance(codes[p], (list, tuple, np.ndarray)):
                    raise ValueError(f"dictionary entry {word!r}: part {p!r} is {type(codes[p]).__name__} "
                                     f"{codes[p]!r:.40}, expected a list of integer codes")
            lengths = {p: len(codes[p]) for p in self.parts}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"dictionary entry {word!r}: the parts have different code lengths {lengths}; "
                                 f"every part needs one code per time step")
            codes = np.stack([np.asarray(codes[p], dtype=np.int64) for p in self.parts], axis=1)
        if isinstance(codes, (str, bytes)):
            raise ValueError(f"dictionary entry {word!r}: codes are a string {codes!r:.40}, expected [L >= 1, "
                             f"{len(self.parts)}] integers (parts {list(self.parts)})")
        try:
            arr = np.asarray(codes)
        except ValueError:  # rows of different lengths
            raise ValueError(f"dictionary entry {word!r}: code rows have different lengths; every step needs one "
                             f"code per part {list(self.parts)}") from None
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

    def add_alias(self, lang: str, word: str, alias: str) -> str | None:
        """Make ``alias`` (another surface form: "cups", "hilft", "police officers") retrieve the entry ``word``.

        Args:
            lang: the entry's language.
            word: an existing entry of ``lang``.
            alias: the form; normalised like a key.

        Returns:
            The normalised alias, or None when it equals ``word`` itself (nothing to add).

        Raises:
            KeyError: ``word`` has no entry in ``lang``.
            ValueError: ``alias`` is empty or already an alias of another entry (a form must name one sign).
        """
        key = normalize_word(word)
        if key not in self.entries.get(lang, {}):
            raise KeyError(f"alias {alias!r}: no dictionary entry {word!r} in language {lang!r}; add the entry first")
        form = normalize_word(alias)
        if not form:
            raise ValueError(f"dictionary entry {word!r} ({lang}): empty alias {alias!r}")
        if form == key:
            return None
        owner = self.alias_owner(lang, form)
        if owner is not None and owner != key:
            raise ValueError(f"alias {form!r} of {key!r} ({lang}) is already an alias of {owner!r}: a surface form "
                             f"must retrieve one sign; drop it from one of the two entries")
        forms = self.aliases.setdefault(lang, {}).setdefault(key, [])
        if form not in forms:
            forms.append(form)
        return form

    def aliases_of(self, lang: str, word: str) -> list[str]:
        """The aliases of entry ``word`` in ``lang`` (empty when it has none)."""
        return list(self.aliases.get(lang, {}).get(normalize_word(word), []))

    def alias_owner(self, lang: str, alias: str) -> str | None:
        """The entry whose alias ``alias`` is in ``lang``, or None."""
        form = normalize_word(alias)
        for key, forms in self.aliases.get(lang, {}).items():
            if form in forms:
                return key
        return None

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
        """Per language: words, exemplars, aliases, multi-word entries and code lengths (min / median / max)."""
        out = {}
        for lang in self.languages:
            words = self.entries[lang]
            lengths = np.array([len(e) for ex in words.values() for e in ex])
            out[lang] = {"words": len(words), "exemplars": int(lengths.size),
                         "aliases": sum(map(len, self.aliases.get(lang, {}).values())),
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
        """The file content; ``aliases`` only when there are any (files without them stay as before)."""
        out = {
            "format": DICT_FORMAT, "version": DICT_VERSION, "tokenizer_hash": self.tokenizer_hash,
            "parts": list(self.parts), "codebook_sizes": dict(self.codebook_sizes), "info": self.info,
            "entries": {lang: {w: [{p: ex[:, i].tolist() for i, p in enumerate(self.parts)} for ex in exemplars]
                               for w, exemplars in words.items()}
                        for lang, words in self.entries.items()},
        }
        aliases = {lang: {w: list(forms) for w, forms in words.items() if forms}
                   for lang, words in self.aliases.items()}
        aliases = {lang: words for lang, words in aliases.items() if words}
        if aliases:
            out["aliases"] = aliases
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to ``path`` (JSON) atomically."""
        path = Path(path)
        atomic_write_json(path, self.to_json(), compact=True)
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
            raise DictionaryError(f"{path}: sign dictionary does not exist; build one with `soke dict build "
                                  f"--tokenizer CKPT --data DATAMODULE_YAML --out {path}` or import the official one "
                                  f"with `soke dict import word2code.json --out {path}`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DictionaryError(f"{path}: sign dictionary is not valid JSON ({err}); rebuild it with `soke dict "
                                  f"build` or `soke dict import`") from None
        if not isinstance(data, dict) or data.get("format") != DICT_FORMAT:
            hint = (" It looks like the official word2code.json: convert it with `soke dict import`."
                    if isinstance(data, dict) and data and all(isinstance(v, dict) and "body" in v
                                                               for v in list(data.values())[:5]) else "")
            raise DictionaryError(f"{path}: format {data.get('format') if isinstance(data, dict) else None!r}, "
                                  f"expected {DICT_FORMAT!r}.{hint}")
        if data.get("version") != DICT_VERSION:
            raise DictionaryError(f"{path}: dictionary version {data.get('version')!r}, expected {DICT_VERSION}")
        fix = "rebuild it with `soke dict build` or `soke dict import`"
        for key in ("tokenizer_hash", "parts", "codebook_sizes", "entries"):
            if key not in data:
                raise DictionaryError(f"{path}: key {key!r} is missing from the dictionary file; {fix}")
        parts, sizes = data["parts"], data["codebook_sizes"]
        if (not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts)
                or not isinstance(sizes, dict) or not all(isinstance(sizes.get(p), int) and sizes[p] > 0
                                                          for p in parts)):
            raise DictionaryError(f"{path}: 'parts' {parts!r:.60} and 'codebook_sizes' {sizes!r:.80} must be part "
                                  f"names and a positive size for each; {fix}")
        if not isinstance(data["entries"], dict) or not all(isinstance(w, dict) for w in data["entries"].values()):
            raise DictionaryError(f"{path}: 'entries' must map languages to {{word: [exemplars]}}; {fix}")
        out = cls(data["tokenizer_hash"], tuple(parts), sizes, info=data.get("info", {}), path=path)
        for lang, words in data["entries"].items():
            for word, exemplars in words.items():
                if not isinstance(exemplars, list):
                    raise DictionaryError(f"{path}: entries.{lang}.{word}: expected a list of exemplars, got "
                                          f"{type(exemplars).__name__}; {fix}")
                for i, ex in enumerate(exemplars):
                    try:
                        out.add(lang, word, ex)
                    except (ValueError, KeyError) as err:
                        detail = str(err).removeprefix(f"dictionary entry {word!r}: ")
                        raise DictionaryError(f"{path}: entries.{lang}.{word}[{i}]: {detail}; {fix}") from None
        orphans = []
        for lang, words in (data.get("aliases") or {}).items():
            for word, forms in words.items():
                if normalize_word(word) not in out.entries.get(lang, {}):
                    orphans.append(f"{lang}:{word}")  # an entry removed by hand; its aliases cannot retrieve it
                    continue
                for form in forms:
                    try:
                        out.add_alias(lang, word, form)
                    except ValueError as err:
                        raise DictionaryError(f"{path}: aliases: {err}") from None
        if orphans:
            log.warning("%s: aliases of %d words without an entry are ignored: %s", path, len(orphans),
                        ", ".join(orphans[:20]))
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
        raise DictionaryError(f"{path}: does not exist; pass the official scripts/word2code.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DictionaryError(f"{path}: not valid JSON ({err}); pass the official scripts/word2code.json") from None
    if not isinstance(data, dict):
        raise DictionaryError(f"{path}: expected a JSON object word -> {{body, lhand, rhand}}, got {type(data).__name__}")
    for language in (lang, latin_lang):
        if language is not None:
            get_language(language)
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
            raise DictionaryError(f"{path}: {err}; check that it is the official word2code.json") from None
    log.info("imported %d entries from %s: %s", len(out), path, {k: len(v) for k, v in out.entries.items()})
    return out


# ------------------------------------------------------------------------------------------------------ build
def span_codes(span: Sequence[int], raw_frames: int, frames: int, rate: int, steps: int) -> tuple[int, int]:
    """The code steps [first, last) that cover a sign's frame span inside a clip.

    Args:
        span: the sign's [start, end) in the clip's stored frames.
        raw_frames: the clip's stored length; ``frames``: its length after temporal processing (the two differ
            only when the length rule resampled the clip).
        rate: frames per code step (the tokenizer's down-sampling).
        steps: the clip's code steps.

    >>> span_codes([12, 30], 48, 48, 4, 12)  # frames 12..29 -> steps 3..7
    (3, 8)
    """
    start, end = int(span[0]), int(span[1])
    if not 0 <= start < end <= raw_frames:
        raise ValueError(f"sign span {list(span)} is not inside the clip's {raw_frames} frames")
    scale = frames / raw_frames
    first = min(steps - 1, int(start * scale) // rate)
    last = max(first + 1, min(steps, -(-int(round(end * scale)) // rate)))
    return first, last


def build_dictionary(tokenizer, datasets, *, tokenizer_hash: str, batch_size: int = 32, device=None,
                     renormalize=None, info: dict | None = None, aliases: bool = True,
                     sign_span: bool = True) -> SignDictionary:
    """Encode isolated signs with the frozen tokenizer: one exemplar per sample, keyed by the sample's text.

    The whole clip is encoded (the encoder sees the sign with its padding, as in a continuous sentence); with
    ``sign_span`` and a sample ``meta["span"]`` (the sign's [start, end) frames in the clip; SynthSign records it)
    only the codes that cover the sign are kept (:func:`span_codes`), so rest padding does not enter the prompt.

    With ``aliases``, each sample's ``meta["forms"]`` (other surface forms of its word; SynthSign records them,
    other stores may not: no forms = the key only) become aliases of its entry (:func:`add_form_aliases`).

    Args:
        tokenizer: a :class:`~soke_lightning.models.tokenizer.SignTokenizer` (eval mode).
        datasets: :class:`~soke_lightning.data.datamodule.SignDataset` s of isolated signs (text = the word).
        tokenizer_hash: its hash, recorded in the dictionary.
        batch_size: samples per encoder batch (equal-length batches, as ``soke encode``).
        device: torch device of the tokenizer.
        renormalize: optional map from the datasets' normalisation to the tokenizer's.
        info: provenance recorded in the file.
        aliases: add the samples' recorded forms as aliases (False: keys only, as SOKE's dictionary).
        sign_span: keep only the codes of the sign's span when the sample records one (False: the whole clip,
            as SOKE's dictionary).

    Returns:
        The dictionary; the codes of each sample are ``tokenizer.encode`` of that sample alone (cut to its span).
    """
    import torch

    device = device or torch.device("cpu")
    out = SignDictionary(tokenizer_hash, tuple(tokenizer.parts), dict(tokenizer.codebook_sizes), info=dict(info or {}))
    forms: list[tuple[str, str, list[str]]] = []
    for dataset in datasets:
        texts, spans = {}, {}
        for i in range(len(dataset)):
            r = dataset.record(i)
            texts[f"{r['corpus']}/{r['name']}"] = r["text"]
            span = (r.get("meta") or {}).get("span")
            if sign_span and span is not None:
                spans[f"{r['corpus']}/{r['name']}"] = (span, int(r["length"]))
            forms.append((r["lang"], r["text"], list((r.get("meta") or {}).get("forms") or [])))
        records, codes = encode_dataset(tokenizer, dataset, batch_size, device, renormalize, desc="dictionary")
        order = {key: i for i, key in enumerate(texts)}
        # encode_dataset groups samples by length; restore dataset order so exemplar order is deterministic.
        for i in sorted(range(len(records)), key=lambda j: order[records[j]["key"]]):
            key, entry = records[i]["key"], codes[i]
            if key in spans:
                span, raw_frames = spans[key]
                first, last = span_codes(span, raw_frames, records[i]["frames"], tokenizer.downsample_rate, len(entry))
                entry = entry[first:last]
            out.add(records[i]["lang"], texts[key], entry)
    if aliases:
        add_form_aliases(out, forms)
    return out


def add_form_aliases(dictionary: SignDictionary, forms: Sequence[tuple[str, str, Sequence[str]]]) -> int:
    """Add ``(lang, word, forms)`` as aliases of the entries, skipping forms that cannot name one sign.

    A form equal to another entry's key (that key wins anyway) or listed for two different entries of a language
    is skipped and logged; the rest are added with :meth:`SignDictionary.add_alias`. Entries that are missing
    from the dictionary (e.g. a sample the processing dropped) are skipped.

    Returns:
        The number of aliases added.
    """
    owners: dict[tuple[str, str], set[str]] = {}
    for lang, word, words in forms:
        for form in words:
            owners.setdefault((lang, normalize_word(form)), set()).add(normalize_word(word))
    def count() -> int:
        return sum(len(f) for words in dictionary.aliases.values() for f in words.values())

    before, skipped = count(), []
    for lang, word, words in forms:
        key = normalize_word(word)
        if key not in dictionary.entries.get(lang, {}):
            continue
        for form in words:
            norm = normalize_word(form)
            if norm == key:
                continue
            if len(owners[(lang, norm)]) > 1 or norm in dictionary.entries[lang] \
                    or dictionary.alias_owner(lang, norm) not in (None, key):
                skipped.append(f"{lang}:{norm}")
                continue
            dictionary.add_alias(lang, key, norm)
    if skipped:
        log.warning("%d surface forms name several dictionary entries (or are another entry's key) and are not "
                    "aliases: %s", len(skipped), ", ".join(sorted(set(skipped))[:20]))
    return count() - before
