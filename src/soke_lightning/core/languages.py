"""The language / corpus registry: everything language-specific is declared here, once.

Adding a corpus = one entry in CORPORA (+ one reader in data/official.py) + one YAML in datamodules/.
"""

from __future__ import annotations

from dataclasses import dataclass

from soke_lightning.core.errors import RegistryKeyError


@dataclass(frozen=True)
class Language:
    """A sign language with the spoken language of its texts.

    Attributes:
        key: short id used everywhere in configs and metric keys ("asl", "csl", "dgs").
        sign_language: human name of the sign language.
        spoken_language: ISO-639-1 code of the text language.
        spoken_code: mBART source-language tag (encoder side).
        sign_tag: target sign-language tag (decoder side, docs/design.md §4.2).
        retrieval_separator: prompt text before the i-th retrieved keyword, ``{i}`` is replaced (§5.3).
        char_level_bleu: score BLEU/ROUGE on characters (Chinese) instead of words.
    """

    key: str
    sign_language: str
    spoken_language: str
    spoken_code: str
    sign_tag: str
    retrieval_separator: str
    char_level_bleu: bool = False


@dataclass(frozen=True)
class Corpus:
    """A corpus in its official release layout.

    Attributes:
        name: corpus id ("how2sign", "csl_daily", "phoenix14t", "synthsign").
        language: key of its :class:`Language`.
        fps: native frame rate (frames per second) when the corpus does not give one per sample.
        fps_cap: resample down to this rate at load time when a sample's fps exceeds it (How2Sign: 24), else None.
        split_names: our split name -> the corpus's own split name (Phoenix calls val "dev").
        official_name: the ``src`` tag SOKE uses for this corpus (how2sign / csl / phoenix).
    """

    name: str
    language: str
    fps: float
    fps_cap: float | None
    split_names: dict[str, str]
    official_name: str


LANGUAGES: dict[str, Language] = {
    lang.key: lang
    for lang in (
        Language("asl", "American Sign Language", "en", "en_XX", "en_ASL", " Key word {i}, "),
        Language("csl", "Chinese Sign Language", "zh", "zh_CN", "zh_CSL", " 关键词 {i}, ", char_level_bleu=True),
        Language("dgs", "German Sign Language", "de", "de_DE", "de_DGS", " Schlüsselwort {i}, "),
    )
}

_STD_SPLITS = {"train": "train", "val": "val", "test": "test"}

CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus("how2sign", "asl", 24.0, 24.0, dict(_STD_SPLITS), "how2sign"),
        Corpus("csl_daily", "csl", 30.0, None, dict(_STD_SPLITS), "csl"),
        Corpus("phoenix14t", "dgs", 25.0, None, {"train": "train", "val": "dev", "test": "test"}, "phoenix"),
        Corpus("synthsign", "asl", 25.0, None, {**_STD_SPLITS, "dictionary": "dictionary"}, "synthsign"),
    )
}


def get_language(key: str) -> Language:
    """Return the registered language ``key``; unknown keys raise a KeyError listing the valid ones."""
    try:
        return LANGUAGES[key]
    except KeyError:
        raise RegistryKeyError(f"unknown language {key!r}; valid languages: {', '.join(sorted(LANGUAGES))}") from None


def get_corpus(name: str) -> Corpus:
    """Return the registered corpus ``name``; unknown names raise a KeyError listing the valid ones."""
    try:
        return CORPORA[name]
    except KeyError:
        raise RegistryKeyError(f"unknown corpus {name!r}; valid corpora: {', '.join(sorted(CORPORA))}") from None


def language_of_tag(tag: str) -> Language:
    """Find a language by its spoken code (en_XX) or sign tag (en_ASL)."""
    for lang in LANGUAGES.values():
        if tag in (lang.spoken_code, lang.sign_tag):
            return lang
    raise RegistryKeyError(f"no language has tag {tag!r}; known tags: "
                   f"{sorted(t for lg in LANGUAGES.values() for t in (lg.spoken_code, lg.sign_tag))}")


#: ISO 639-3 codes are three lower-case letters; a corpus may declare a language the registry lacks with one.
def _is_iso639_3(code: str) -> bool:
    return len(code) == 3 and code.isascii() and code.isalpha() and code.islower()


def data_language(code: str, spoken_code: str, sign_language: str | None = None) -> Language:
    """A language declared by a corpus (not built in): ISO 639-3 ``code``, the mBART tag of its texts.

    The sign tag is ``<spoken prefix>_<CODE>`` (e.g. ``en_ASE``); retrieval prompts use the English separator.

    Raises:
        ValueError naming the code when it is not ISO 639-3 or ``spoken_code`` is not like ``en_XX``.
    """
    if not _is_iso639_3(code):
        raise ValueError(f"sign language {code!r} is neither registered ({sorted(LANGUAGES)}) nor an ISO 639-3 code "
                         f"(three lower-case letters, e.g. 'ase', 'gsg', 'bfi')")
    prefix, _, region = spoken_code.partition("_")
    if len(prefix) != 2 or not region:
        raise ValueError(f"spoken-language tag {spoken_code!r} of sign language {code!r} must look like 'en_XX'")
    return Language(code, sign_language or code, prefix, spoken_code, f"{prefix}_{code.upper()}", " Key word {i}, ")


def _register(registry: dict, key: str, entry, what: str, declarer: str):
    """Add ``entry`` under ``key`` (idempotent for an identical entry); a different one is refused naming both."""
    known = registry.get(key)
    if known is not None and known != entry:
        raise ValueError(f"{what} {key!r} is registered as {known} but a {declarer} declares {entry}")
    registry[key] = entry
    return entry


def register_language(lang: Language) -> Language:
    """Add a corpus-declared language to :data:`LANGUAGES` (idempotent for an identical entry).

    Raises:
        ValueError naming both entries when ``lang.key`` is registered with different tags.
    """
    return _register(LANGUAGES, lang.key, lang, "language", "corpus")


def register_corpus(corpus: Corpus) -> Corpus:
    """Add a corpus declared by a store (e.g. a `.pose` corpus) to :data:`CORPORA` (idempotent)."""
    return _register(CORPORA, corpus.name, corpus, "corpus", "store")


def register_declared(info: dict) -> None:
    """Register the languages and the corpus a store's manifest ``info`` declares (``languages`` / ``corpus_entry``)."""
    for entry in (info.get("languages") or {}).values():
        register_language(Language(**entry))
    if info.get("corpus_entry"):
        register_corpus(Corpus(**info["corpus_entry"]))


#: The languages built into the registry; any other entry was declared by a corpus.
BUILTIN_LANGUAGES: frozenset[str] = frozenset(LANGUAGES)


def declared_languages() -> dict[str, Language]:
    """The registered languages that corpora declared (not built in), by key."""
    return {k: v for k, v in LANGUAGES.items() if k not in BUILTIN_LANGUAGES}
