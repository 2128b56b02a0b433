"""Retrieval for arbitrary text: find dictionary words in a sentence and spell them into the encoder prompt.

SOKE only shipped pre-computed keyword lists per sample name (docs/design.md §5.2), so new text could not be
served. Two matchers:

* ``words`` (default): only the input language's entries are searched. English / German: the text is split into
  normalised word tokens (NFKC, lower case, punctuation stripped; ``-``, ``'`` and ``+`` stay inside a word, as in
  Phoenix glosses), dictionary entries are token sequences (multi-word entries are phrases), and the text is
  scanned left to right taking the longest entry that starts at each token (greedy longest match), so no entry
  matches inside another word. Chinese (a character-segmented language, :data:`CHARACTER_SEGMENTED`): the same
  greedy longest match over characters, i.e. dictionary-driven forward maximum-matching segmentation; runs of
  Latin letters / digits are single tokens.

  *Aliases*: an entry's aliases (:meth:`SignDictionary.add_alias`: "cups", "hilft", "police officers"; SynthSign
  dictionaries carry every form its sentences use) are matched exactly like keys (phrases too, longest first, only
  the input language's) and retrieve their entry; a key wins over another entry's alias, and a one-word alias that
  is a function word (:data:`FUNCTION_WORDS`: "hat", "has") is ignored, as it would hit auxiliaries.

  *Inflection fallback* (``inflection="suffix"``; default ``"none"``, SOKE parity), for real English / German text
  whose dictionary has no aliases: a token also matches an entry word (key or alias) when it is that word plus
  one suffix of :data:`INFLECTION_SUFFIXES` (English "s", "es", "ed", "d", "ing", "'s"; German "e", "en", "er",
  "es", "em", "n", "s", "t", "st", "te", ...; some only after certain stem endings) and the remaining stem has at
  least :data:`MIN_STEM` letters: "cups" -> cup, "Handys" -> handy, "schlechte" -> schlecht, "police officers" ->
  police officer. Exact matches come first: at each position the longest phrase wins, and at equal length an
  exact (key / alias) match beats an inflected one; among inflected readings the longest stem wins. Tokens that
  are function words are never de-inflected. It is a heuristic: irregular forms ("ate", "hilft", "Äpfel") need
  aliases, and a word that happens to be another word plus a suffix ("Reisen" -> reis) is a false hit. Chinese has
  no suffixes and is unaffected.
* ``soke_substring`` (parity with the reference): every key of EVERY language, in dictionary order, that occurs
  as a raw substring of the lower-cased sentence, stable-sorted by key length (§5.2): "two" inside "mittwoch"
  included. Keys only: no aliases, no inflection fallback (substrings already hit inflected words).

*Known words* (``known_words="builtin"`` and / or a ``lexicon``; default ``"none"``: today's behaviour), for
Chinese above all: forward maximum matching only knows the dictionary's words, so with 什么 in the dictionary but
not 为什么, "你为什么哭" hits 什么, and "他开车" hits 车 (car) although 开车 is "to drive". Known words are segments
that retrieve nothing: the scan takes them like entries (longest first; at equal length an entry or alias wins),
so the characters inside them are not matched. Dictionary keys of other entries block the same way already (with
both 什么 and 为什么 in the dictionary only 为什么 matches). ``"builtin"`` adds :data:`KNOWN_WORDS` (a short list of
common Chinese multi-character words whose characters are common signs of their own: 为什么, 开车, 没有, 有些, 有的,
一起, 东西, ...); ``lexicon`` adds any words per sign-language key (phrases too; for English / German a lexicon
phrase longer than an entry blocks it). Known words are also segments of the Chinese coverage units.

Selection (:func:`select`): hits are de-duplicated by word, then ``order="longest"`` keeps the ``top_k`` longest
keys (in characters) longest first, ties in text order (SOKE's order; the reference breaks ties by dictionary
order), ``order="text"`` keeps the first ``top_k`` hits in text order, and ``order="rarest"`` keeps the ``top_k``
words that are rarest in the training texts first (a document-frequency table: how many training sentences of the
language contain the word, computed with the same matcher; the retrieval callback builds it from the DataModule's
training split), ties longest first, then in text order. Each retrieved entry contributes its first exemplar (or,
with a random generator, one drawn uniformly: the callback's ``exemplar="random_train"`` in training), subsampled
to at most ``max_codes_per_entry`` steps with ``floor(linspace(0, L-1, n))`` (§5.3). :func:`drop_entries` is the
callback's training-time retrieval dropout.

Prompt (:func:`format_prompt`, §4.4 / §5.3): ``text`` + for each entry i = 1..k the language's separator
(``" Key word {i}, "``, ``" 关键词 {i}, "``, ``" Schlüsselwort {i}, "``; ``separator="word"`` appends the entry's
word and a colon: ``" Key word {i}, {word}: "``, word-anchored as the paper-era official code wrote it) + its code
steps as motion-token triplets ``<body_b><lhand_l><rhand_r>``
(:func:`~soke_lightning.models.text_tokenizer.motion_string`, so the retrieval tokens are exactly the model's
tokens). :func:`fit_to_budget` drops whole entries from the end until the prompt (with its separators, words
included) fits a token budget. :func:`build_prompt` does all of it and is what the retrieval callback,
``soke dict match`` and ``soke generate`` call.

Coverage (:func:`content_coverage`): a *content word* is a token (Chinese: a segment of the dictionary-driven
segmentation, where function words also count as segments and an unmatched character is a segment of its own)
that is alphabetic and not in :data:`FUNCTION_WORDS`; it is *covered* when it lies inside a ``words``-matcher hit
(any hit, not only the top k; aliases and the matcher's inflection setting included). Chinese words missing from
the dictionary count once per character, so Chinese coverage is a lower bound.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from soke_lightning.core.languages import LANGUAGES, get_language
from soke_lightning.models.text_tokenizer import motion_string
from soke_lightning.retrieval.dictionary import SignDictionary, span_codes

#: Spoken languages written without spaces: segmented into characters and matched against the dictionary.
CHARACTER_SEGMENTED = frozenset({"zh", "ja"})

#: Function words per spoken language (ISO-639-1): words that carry no sign of their own, so they are not counted
#: as content words by :func:`content_coverage`. Declared here, once. They include every word SynthSign's grammar
#: inserts without a sign (articles, auxiliaries, copulas, prepositions, negation, Chinese aspect particles and
#: measure words) plus common ones of the real corpora. Pronouns are signed (IX) and are NOT listed.
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "a an the this that these those am is are was were be been being will would shall should can could may "
        "might must do does did done have has had having not n't 's to of in on at by for with from into onto as "
        "and or but if than then so there here it its".split()),
    "de": frozenset(
        "der die das den dem des ein eine einen einem einer eines bin bist ist sind seid war warst waren wart "
        "sein gewesen habe hast hat haben habt hatte hatten werde wirst wird werden werdet wurde wurden worden "
        "nicht es gibt gab im in am an auf aus bei mit nach von vom zu zum zur und oder aber als auch noch so "
        "dann da".split()),
    "zh": frozenset(
        "的 了 吗 呢 吧 啊 着 过 很 会 不 没 没有 有 是 在 和 与 就 都 也 还 要 "
        "个 只 头 匹 本 条 张 块 把 辆 碗 杯 份 双 封 幅 部 根 朵 场 家 所 片 位 件 次 种".split()),
}

#: Inflection suffixes per spoken language for ``inflection="suffix"``: (suffix, stem endings it requires; empty:
#: any stem). English "es" only after a sibilant or "o" (boxes, not car+es = "cares"), "d" only after "e" (liked);
#: German "n" only after "e", "el", "er" (Tassen, not neu+n = "neun").
INFLECTION_SUFFIXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "en": (("s", ()), ("es", ("s", "x", "z", "ch", "sh", "o")), ("ed", ()), ("d", ("e",)), ("ing", ()),
           ("'s", ())),
    "de": (("e", ()), ("en", ()), ("er", ()), ("es", ()), ("em", ()), ("ern", ()), ("n", ("e", "el", "er")),
           ("s", ()), ("t", ()), ("st", ()), ("et", ()), ("est", ()), ("te", ()), ("ten", ())),
}
#: Shortest stem (in characters) the inflection fallback accepts.
MIN_STEM = 3
#: Values of the ``inflection`` option.
INFLECTIONS = ("none", "suffix")

#: Built-in known words per spoken language for ``known_words="builtin"``: common multi-character Chinese words
#: made of characters that are common dictionary signs of their own, so forward maximum matching would hit those
#: signs inside them (什么 in 为什么, 车 in 开车, 有 in 没有 / 有些 / 有的, 一 in 一起 / 一样, 东 / 西 in 东西).
#: Short on purpose: it blocks obvious false hits, it is not a segmentation lexicon (pass ``lexicon`` for that).
#: Existential 有 ("有人...") is NOT blocked: 有人 would also hide 人 (person), which is usually wanted.
KNOWN_WORDS: dict[str, frozenset[str]] = {
    "zh": frozenset("为什么 什么时候 开车 没有 有些 有的 一起 一样 一些 一定 东西 但是 可是 还是 所以 因为 已经 "
                    "时候 多少".split()),
}
#: Values of the ``known_words`` option.
KNOWN_WORD_SOURCES = ("none", "builtin")
#: Values of the ``order`` option (see :func:`select`).
ORDERS = ("longest", "text", "rarest")
#: Values of the ``separator`` option (see :func:`format_prompt`).
SEPARATORS = ("index", "word")

_LATIN_WORD = r"[^\W_]+(?:[-'+][^\W_]+)*"
_CJK_CLASS = r"\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD_RE = re.compile(_LATIN_WORD)
_CHAR_RE = re.compile(rf"[{_CJK_CLASS}]|[^\W_{_CJK_CLASS}]+(?:[-'+][^\W_{_CJK_CLASS}]+)*")
_MOTION_TOKEN = re.compile(r"<[A-Za-z]+_\d+>")

Order = Literal["longest", "text", "rarest"]
Inflection = Literal["none", "suffix"]
Separator = Literal["index", "word"]
KnownWords = Literal["none", "builtin"]
#: Document frequency per language key: word -> training sentences containing it (``order="rarest"``).
Frequency = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Token:
    """A normalised token and its character span ``[start, end)`` in the (NFKC-normalised) text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Match:
    """A dictionary hit.

    Attributes:
        word: the dictionary key.
        lang: the language whose dictionary section holds it (another one only with ``soke_substring``).
        start / end: character span in the NFKC-normalised text.
        tokens: ``(first, count)`` token span for the ``words`` matcher, None for ``soke_substring``.
        via: how the text matched the entry: "key", "alias" (another surface form of the entry) or "suffix" (the
            inflection fallback).
    """

    word: str
    lang: str
    start: int
    end: int
    tokens: tuple[int, int] | None = None
    via: Literal["key", "alias", "suffix"] = "key"


@dataclass(frozen=True)
class RetrievedEntry:
    """An entry injected into the prompt.

    Attributes:
        match: where it was found.
        codes: [n, P] codes put in the prompt (subsampled).
        total_codes: steps of the exemplar before subsampling.
    """

    match: Match
    codes: np.ndarray
    total_codes: int

    @property
    def word(self) -> str:
        return self.match.word


def spoken(lang: str) -> str:
    """The spoken language (ISO code) of sign-language key ``lang``."""
    return get_language(lang).spoken_language


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def tokenize(text: str, lang: str) -> list[Token]:
    """Normalised tokens of ``text`` for language key ``lang`` (characters for Chinese, words otherwise)."""
    text = normalize_text(text)
    pattern = _CHAR_RE if spoken(lang) in CHARACTER_SEGMENTED else _WORD_RE
    return [Token(m.group().lower(), m.start(), m.end()) for m in pattern.finditer(text)]


def inflection_stems(token: str, lang: str) -> list[str]:
    """The stems ``token`` may be an inflection of (longest first; empty for function words and Chinese).

    A stem is ``token`` minus one suffix of :data:`INFLECTION_SUFFIXES` whose stem-ending condition holds, with at
    least :data:`MIN_STEM` characters.
    """
    language = spoken(lang)
    if token in FUNCTION_WORDS.get(language, ()):
        return []
    stems = []
    for suffix, after in INFLECTION_SUFFIXES.get(language, ()):
        stem = token[:-len(suffix)]
        if token.endswith(suffix) and len(stem) >= MIN_STEM and (not after or stem.endswith(after)):
            stems.append(stem)
    return sorted(set(stems), key=lambda w: (-len(w), w))


def is_content_word(word: str, lang: str) -> bool:
    """Alphabetic and not a function word of ``lang``'s spoken language (see :data:`FUNCTION_WORDS`)."""
    return re.sub(r"[-'+ ]", "", word).isalpha() and word not in FUNCTION_WORDS.get(spoken(lang), frozenset())


# --------------------------------------------------------------------------------------------------- matchers
class WordMatcher:
    """Greedy longest match of dictionary phrases and their aliases over word tokens (characters for Chinese),
    per language, with an optional inflection fallback and known words that block hits inside them (see the
    module docstring).

    Args:
        dictionary: the sign dictionary.
        inflection: "none" (exact keys and aliases only) or "suffix" (also word + an inflection suffix).
        known_words: "none" (only the dictionary's words segment the text; today's behaviour) or "builtin" (also
            :data:`KNOWN_WORDS` of the text's spoken language).
        lexicon: more known words per sign-language key ("csl": ["为什么", ...]); they retrieve nothing and block
            the entries inside them.
    """

    name = "words"

    def __init__(self, dictionary: SignDictionary, inflection: Inflection = "none", known_words: KnownWords = "none",
                 lexicon: Mapping[str, Iterable[str]] | None = None):
        if inflection not in INFLECTIONS:
            raise ValueError(f"inflection must be one of {INFLECTIONS}, got {inflection!r}")
        if known_words not in KNOWN_WORD_SOURCES:
            raise ValueError(f"known_words must be one of {KNOWN_WORD_SOURCES}, got {known_words!r}")
        unknown = sorted(set(lexicon or {}) - set(LANGUAGES))
        if unknown:
            raise KeyError(f"lexicon has unknown language keys {unknown}; valid: {sorted(LANGUAGES)}")
        self.dictionary = dictionary
        self.inflection = inflection
        self.known_words = known_words
        self.lexicon = {lang: tuple(words) for lang, words in (lexicon or {}).items()}
        self._index: dict[tuple[str, bool], tuple[dict[tuple[str, ...], tuple[str, str]], int]] = {}

    def blocking_words(self, lang: str) -> list[str]:
        """The known words of ``lang`` that retrieve nothing and block the entries inside them (built-in list when
        ``known_words="builtin"``, then the lexicon's)."""
        builtin = sorted(KNOWN_WORDS.get(spoken(lang), ())) if self.known_words == "builtin" else []
        return builtin + list(self.lexicon.get(lang, ()))

    def _lookup(self, lang: str, with_function_words: bool = False):
        """(token tuple -> (entry word, "key" | "alias" | "block"), longest entry in tokens) of ``lang``."""
        key = (lang, with_function_words)
        if key not in self._index:
            function_words = FUNCTION_WORDS.get(spoken(lang), frozenset())
            table: dict[tuple[str, ...], tuple[str, str]] = {}
            for word in self.dictionary.words(lang):
                table.setdefault(tuple(t.text for t in tokenize(word, lang)), (word, "key"))
            for word, forms in self.dictionary.aliases.get(lang, {}).items():
                for form in forms:
                    form_tokens = tuple(t.text for t in tokenize(form, lang))
                    if not (len(form_tokens) == 1 and form_tokens[0] in function_words):
                        table.setdefault(form_tokens, (word, "alias"))
            # after keys and aliases: at equal length an entry wins over a known word
            for word in self.blocking_words(lang):
                table.setdefault(tuple(t.text for t in tokenize(word, lang)), (word, "block"))
            if with_function_words:
                for word in function_words:
                    table.setdefault(tuple(t.text for t in tokenize(word, lang)), (word, "key"))
            table.pop((), None)
            self._index[key] = (table, max(map(len, table), default=0))
        return self._index[key]

    def _scan(self, tokens: list[Token], table, longest: int, lang: str | None = None
              ) -> list[tuple[int, int, str, str]]:
        """Greedy longest match: (first token, token count, entry word, via); ``lang`` turns on the fallback."""
        out, i = [], 0
        keys = [t.text for t in tokens]
        stems = [inflection_stems(k, lang) for k in keys] if lang is not None else None
        while i < len(tokens):
            for n in range(min(longest, len(tokens) - i), 0, -1):
                hit = table.get(tuple(keys[i:i + n]))
                if hit is None and stems is not None and any(stems[i:i + n]):
                    readings = itertools.product(*([keys[j], *stems[j]] for j in range(i, i + n)))
                    for reading in itertools.islice(readings, 1, None):  # the first reading is the exact one
                        if reading in table:
                            word, via = table[reading]
                            hit = (word, "block" if via == "block" else "suffix")  # an inflected known word blocks
                            break
                if hit is not None:
                    out.append((i, n, *hit))
                    i += n
                    break
            else:
                i += 1
        return out

    def match(self, text: str, lang: str) -> list[Match]:
        """Non-overlapping hits of ``lang``'s entries in text order."""
        tokens = tokenize(text, lang)
        table, longest = self._lookup(lang)
        fallback = lang if self.inflection == "suffix" and spoken(lang) in INFLECTION_SUFFIXES else None
        return [Match(word, lang, tokens[i].start, tokens[i + n - 1].end, (i, n), via)
                for i, n, word, via in self._scan(tokens, table, longest, fallback) if via != "block"]

    def units(self, text: str, lang: str) -> list[tuple[str, bool]]:
        """The text as coverage units ``(unit, covered)``: tokens, or for Chinese dictionary-driven segments."""
        tokens = tokenize(text, lang)
        covered = [False] * len(tokens)
        for m in self.match(text, lang):
            first, n = m.tokens
            covered[first:first + n] = [True] * n
        if spoken(lang) not in CHARACTER_SEGMENTED:
            return [(t.text, c) for t, c in zip(tokens, covered)]
        # Chinese: segment with dictionary words AND function words, so "没有" is one (function) unit.
        table, longest = self._lookup(lang, with_function_words=True)
        units, i = [], 0
        for start, n, *_ in self._scan(tokens, table, longest) + [(len(tokens), 0, "", "")]:
            units += [(tokens[j].text, covered[j]) for j in range(i, start)]
            if n:
                units.append(("".join(t.text for t in tokens[start:start + n]), all(covered[start:start + n])))
            i = start + n
        return units


class SokeSubstringMatcher:
    """SOKE's matcher (docs/design.md §5.2): raw lower-cased substring hits of every key, stable-sorted longest first.

    Args:
        dictionary: the sign dictionary.
        all_languages: search every language's entries (the reference has no language filter); False: only the
            input language's.
    """

    name = "soke_substring"

    def __init__(self, dictionary: SignDictionary, all_languages: bool = True):
        self.dictionary = dictionary
        self.all_languages = all_languages

    def match(self, text: str, lang: str) -> list[Match]:
        lowered = normalize_text(text).lower()
        langs = self.dictionary.languages if self.all_languages else (lang,)
        seen, hits = set(), []
        for source in langs:
            for word in self.dictionary.words(source):
                if word in seen:
                    continue
                pos = lowered.find(word)
                if pos >= 0:
                    seen.add(word)
                    hits.append(Match(word, source, pos, pos + len(word)))
        return sorted(hits, key=lambda m: -len(m.word))


MATCHERS: dict[str, type] = {"words": WordMatcher, "soke_substring": SokeSubstringMatcher}


def get_matcher(name: str, dictionary: SignDictionary, inflection: Inflection = "none",
                known_words: KnownWords = "none", lexicon: Mapping[str, Iterable[str]] | None = None):
    """Instantiate matcher ``name`` ("words" or "soke_substring") over ``dictionary``.

    Args:
        inflection: the ``words`` matcher's inflection fallback ("none" or "suffix"); ``soke_substring`` only
            takes "none" (it matches raw substrings, inflected words included).
        known_words / lexicon: the ``words`` matcher's known words (see :class:`WordMatcher`); ``soke_substring``
            only takes "none" / None (it has no segmentation to block).
    """
    if name not in MATCHERS:
        raise KeyError(f"unknown retrieval matcher {name!r}; valid: {sorted(MATCHERS)}")
    if name == WordMatcher.name:
        return WordMatcher(dictionary, inflection=inflection, known_words=known_words, lexicon=lexicon)
    if inflection != "none":
        raise ValueError(f"inflection={inflection!r} needs the 'words' matcher; {name!r} matches raw substrings "
                         f"(inflected words included) and takes inflection='none'")
    if known_words != "none" or lexicon:
        raise ValueError(f"known_words={known_words!r} / a lexicon needs the 'words' matcher; {name!r} matches raw "
                         f"substrings and takes known_words='none' and no lexicon")
    return MATCHERS[name](dictionary)


# ---------------------------------------------------------------------------------------------------- prompt
def subsample_codes(codes: np.ndarray, max_steps: int | None) -> np.ndarray:
    """Keep ``floor(linspace(0, L-1, max_steps))`` of the L steps when L > max_steps (docs/design.md §5.3)."""
    if max_steps is None or len(codes) <= max_steps:
        return codes
    if max_steps < 1:
        raise ValueError(f"max_codes_per_entry must be >= 1 or None, got {max_steps}")
    return codes[np.floor(np.linspace(0, len(codes) - 1, max_steps)).astype(np.int64)]


def select(matches: Sequence[Match], top_k: int | None, order: Order = "longest",
           frequency: Frequency | None = None) -> list[Match]:
    """De-duplicate by word, order and cut to ``top_k``.

    Args:
        matches: hits in the matcher's order.
        top_k: entries kept (None: all).
        order: "longest" (key length descending, stable), "text" (as found in the text) or "rarest" (ascending
            ``frequency[lang][word]``, a word missing from the table counting 0; ties longest first, then in text
            order).
        frequency: the document-frequency table "rarest" needs (language key -> word -> training sentences).

    Raises:
        ValueError: an unknown ``order``, or "rarest" without ``frequency``.
    """
    if order not in ORDERS:
        raise ValueError(f"retrieval order must be one of {ORDERS}, got {order!r}")
    if order == "rarest" and frequency is None:
        raise ValueError("retrieval order 'rarest' needs a frequency table (language -> word -> training sentences "
                         "containing it); the retrieval callback computes it from the DataModule's training split, "
                         "or pass frequency=... / use order 'longest'")
    unique, seen = [], set()
    for m in matches:
        if m.word not in seen:
            seen.add(m.word)
            unique.append(m)
    if order == "longest":
        unique = sorted(unique, key=lambda m: -len(m.word))
    elif order == "rarest":
        unique = sorted(unique, key=lambda m: (frequency.get(m.lang, {}).get(m.word, 0), -len(m.word), m.start))
    else:
        unique = sorted(unique, key=lambda m: m.start)
    return unique if top_k is None else unique[:top_k]


def spell_entries(matches: Sequence[Match], dictionary: SignDictionary, max_codes_per_entry: int | None = 10,
                  rng: np.random.Generator | None = None) -> list[RetrievedEntry]:
    """The prompt entries of selected ``matches``: one exemplar each, subsampled to ``max_codes_per_entry`` steps.

    Args:
        rng: None takes each word's first exemplar (deterministic); a generator draws one uniformly per entry (one
            draw per entry, also for words with a single exemplar, so the stream does not depend on the
            dictionary's exemplar counts).
    """
    out = []
    for m in matches:
        exemplars = dictionary.exemplars(m.lang, m.word)
        exemplar = exemplars[0] if rng is None else exemplars[int(rng.integers(len(exemplars)))]
        out.append(RetrievedEntry(m, subsample_codes(exemplar, max_codes_per_entry), len(exemplar)))
    return out


def concept_code_span(entry: RetrievedEntry, concept_of: Callable[[str, str], str | None], concepts: Sequence[str],
                      spans: Sequence[Sequence[int]], raw_frames: int, steps: int, rate: int) -> tuple[int, int] | None:
    """[first, last) code steps of the sign that ``entry`` retrieved, in a sentence of ``steps`` code steps that
    signs ``concepts`` over frame ``spans`` of its ``raw_frames`` stored frames; None when the sentence does not
    sign the entry's concept (a wrong hit)."""
    concept = concept_of(entry.match.lang, entry.word)
    if concept not in concepts:
        return None
    return span_codes(spans[list(concepts).index(concept)], int(raw_frames), steps * rate, rate, steps)


def own_span_entries(entries: Sequence[RetrievedEntry], concept_of: Callable[[str, str], str | None],
                      concepts: Sequence[str], spans: Sequence[Sequence[int]], raw_frames: int, codes: np.ndarray,
                      rate: int, max_codes_per_entry: int | None = 10, strict: bool = True
                      ) -> list[RetrievedEntry] | None:
    """The oracle of retrieval: each entry with the sentence's OWN codes of the retrieved sign's span.

    An upper-bound diagnostic (``exemplar="oracle"`` of the retrieval callback, the oracle control of
    `soke claims`): the prompt then holds exactly what the model should produce for that sign, so a model that
    cannot profit from it cannot profit from any dictionary. Needs a corpus that records which concepts a sentence
    signs and where (SynthSign's ``meta["concepts"]`` / ``meta["spans"]``).

    Args:
        entries: the retrieved entries (their matches decide the words).
        concept_of: ``(lang, dictionary word) -> concept`` (None: unknown).
        concepts / spans: the sentence's signed concepts and their [start, end) frames in its stored clip.
        raw_frames: the clip's stored length; ``codes``: its [L, P] code steps; ``rate``: frames per code step.
        strict: when a retrieved word's concept is not signed in the sentence (a wrong hit), return None
            (evaluation: no oracle for this sentence); else keep that entry's dictionary codes.

    >>> m = Match("owl", "asl", 0, 3)
    >>> e = RetrievedEntry(m, np.zeros((2, 1), np.int64), 2)
    >>> codes = np.arange(6)[:, None]
    >>> [x.codes[:, 0].tolist() for x in own_span_entries([e], lambda l, w: "OWL", ["CAT", "OWL"], [[0, 8], [8, 16]], 24, codes, 4)]
    [[2, 3]]
    """
    out = []
    for e in entries:
        span = concept_code_span(e, concept_of, concepts, spans, raw_frames, len(codes), rate)
        if span is None:
            if strict:
                return None
            out.append(e)
            continue
        own = codes[span[0]:span[1]]
        out.append(RetrievedEntry(e.match, subsample_codes(own, max_codes_per_entry), len(own)))
    return out


def drop_entries(entries: Sequence[RetrievedEntry], rng: np.random.Generator, entry_dropout: float = 0.0,
                 block_dropout: float = 0.0) -> list[RetrievedEntry]:
    """Retrieval dropout (training only): drop the whole block with probability ``block_dropout``, else each entry
    independently with probability ``entry_dropout``. Kept entries keep their order (and are renumbered 1..k'
    by :func:`format_prompt`).

    The draws are always made (one for the block, then one per entry), so the same generator gives the same
    decisions whatever the probabilities.
    """
    drop_block = rng.random() < block_dropout
    keep = rng.random(len(entries)) >= entry_dropout
    return [] if drop_block else [e for e, k in zip(entries, keep) if k]


def retrieve(text: str, lang: str, dictionary: SignDictionary, *, top_k: int | None = 3,
             max_codes_per_entry: int | None = 10, order: Order = "longest",
             matcher: str | WordMatcher | SokeSubstringMatcher = "words",
             inflection: Inflection = "none", frequency: Frequency | None = None,
             rng: np.random.Generator | None = None, known_words: KnownWords = "none") -> list[RetrievedEntry]:
    """The entries retrieval injects for ``text``, in prompt order (see module docstring).

    ``inflection`` and ``known_words`` apply when ``matcher`` is a name; a matcher instance keeps its own.
    ``frequency`` is the table of ``order="rarest"`` (:func:`select`); ``rng`` draws a random exemplar per entry
    (:func:`spell_entries`; None: the first).
    """
    if isinstance(matcher, str):
        matcher = get_matcher(matcher, dictionary, inflection, known_words)
    return spell_entries(select(matcher.match(text, lang), top_k, order, frequency), dictionary, max_codes_per_entry,
                         rng)


def entry_separator(lang: str, i: int, word: str, separator: Separator = "index") -> str:
    """The text before entry ``i``'s motion tokens: the language's separator (``" Key word 3, "``), followed with
    ``separator="word"`` by the entry's word and a colon (``" Key word 3, apple: "``)."""
    if separator not in SEPARATORS:
        raise ValueError(f"retrieval separator must be one of {SEPARATORS}, got {separator!r}")
    head = get_language(lang).retrieval_separator.format(i=i)
    return head if separator == "index" else f"{head}{word}: "


def format_prompt(text: str, lang: str, entries: Sequence[RetrievedEntry], parts: Sequence[str],
                  separator: Separator = "index") -> str:
    """``text`` + ``separator(i) + motion tokens`` for every entry (docs/design.md §5.3; :func:`entry_separator`)."""
    return text + "".join(entry_separator(lang, i, e.word, separator) + motion_string(e.codes, parts)
                          for i, e in enumerate(entries, 1))


def separator_texts(max_entries: int = 10, separator: Separator = "index") -> list[str]:
    """Every language's retrieval separator for entries 1..``max_entries`` (``" Key word 3, "`` ...).

    A text tokenizer trained only on the corpus sentences may lack the separators' characters (digits, 关键词) and
    turn them into ``<unk>``, losing the entry index; add these strings to its training texts. With
    ``separator="word"`` every string also ends in ``": "`` (the words themselves are in the training sentences).
    """
    if separator not in SEPARATORS:
        raise ValueError(f"retrieval separator must be one of {SEPARATORS}, got {separator!r}")
    tail = ": " if separator == "word" else ""
    return [lang.retrieval_separator.format(i=i) + tail for lang in LANGUAGES.values()
            for i in range(1, max_entries + 1)]


def approximate_token_count(prompt: str) -> int:
    """An upper bound of the tokens a prompt needs without its tokenizer.

    Motion tokens are single added tokens and counted exactly; every other character counts as one token, which
    no SentencePiece / BPE tokenizer exceeds (each token covers at least one character; a space merges into the
    following word).
    """
    motion = _MOTION_TOKEN.findall(prompt)
    return len(motion) + len(prompt) - sum(map(len, motion))


def fit_to_budget(text: str, lang: str, entries: Sequence[RetrievedEntry], parts: Sequence[str],
                  max_tokens: int | None, count_tokens: Callable[[str], int] | None = None,
                  reserved: int = 2, separator: Separator = "index") -> tuple[str, list[RetrievedEntry]]:
    """Drop whole entries from the end until the prompt plus ``reserved`` tokens (``</s>`` and the language
    code) fits ``max_tokens``; a sentence longer than the budget keeps no entry (the LM truncates the text).
    The prompt is counted as written, so ``separator="word"`` counts the words too.

    Returns:
        (prompt, kept entries).
    """
    kept = list(entries)
    prompt = format_prompt(text, lang, kept, parts, separator)
    if max_tokens is None:
        return prompt, kept
    count = count_tokens or approximate_token_count
    while kept and count(prompt) + reserved > max_tokens:
        kept.pop()
        prompt = format_prompt(text, lang, kept, parts, separator)
    return prompt, kept


def build_prompt(text: str, lang: str, dictionary: SignDictionary, *, top_k: int | None = 3,
                 max_codes_per_entry: int | None = 10, order: Order = "longest",
                 matcher: str | WordMatcher | SokeSubstringMatcher = "words", max_tokens: int | None = None,
                 count_tokens: Callable[[str], int] | None = None,
                 inflection: Inflection = "none", separator: Separator = "index",
                 frequency: Frequency | None = None,
                 known_words: KnownWords = "none") -> tuple[str, list[RetrievedEntry]]:
    """The encoder prompt of ``text``: the sentence followed by the retrieved signs' motion tokens.

    Args:
        text: the spoken-language sentence.
        lang: its sign-language key ("asl", "csl", "dgs").
        dictionary: the sign dictionary (bound to the model's tokenizer).
        top_k: entries to inject (SOKE: 3; None = all hits).
        max_codes_per_entry: code steps per entry, subsampled with linspace (SOKE: 10; None = all).
        order: "longest" (SOKE), "text" or "rarest" (needs ``frequency``; see :func:`select`).
        matcher: "words" (default), "soke_substring" (parity) or a matcher instance (reuse its index).
        max_tokens: token budget of the whole encoder input (SOKE: 256) or None for no limit.
        count_tokens: counts a prompt's tokens (the model's text tokenizer); default
            :func:`approximate_token_count`, an upper bound.
        inflection: the ``words`` matcher's inflection fallback, "none" (default) or "suffix".
        separator: "index" (SOKE: ``" Key word i, "``) or "word" (``" Key word i, <word>: "``).
        frequency: document-frequency table of ``order="rarest"``.
        known_words: the ``words`` matcher's known words, "none" (default) or "builtin" (see :class:`WordMatcher`).

    Returns:
        (prompt, the entries in it, in prompt order).
    """
    entries = retrieve(text, lang, dictionary, top_k=top_k, max_codes_per_entry=max_codes_per_entry, order=order,
                       matcher=matcher, inflection=inflection, frequency=frequency, known_words=known_words)
    return fit_to_budget(text, lang, entries, dictionary.parts, max_tokens, count_tokens, separator=separator)


def document_frequency(pairs: Iterable[tuple[str, str]], matcher) -> dict[str, dict[str, int]]:
    """The table of ``order="rarest"``: for every (text, language key) pair, each matched word counts once.

    Args:
        pairs: (sentence, sign-language key) of the training texts.
        matcher: the matcher the prompts use (its hits' ``lang`` and ``word`` are counted).

    Returns:
        language key -> word -> number of texts containing it (words never matched are absent, i.e. 0).
    """
    table: dict[str, dict[str, int]] = {}
    for text, lang in pairs:
        for lang_word in {(m.lang, m.word) for m in matcher.match(text, lang)}:
            words = table.setdefault(lang_word[0], {})
            words[lang_word[1]] = words.get(lang_word[1], 0) + 1
    return table


def content_coverage(text: str, lang: str, matcher: WordMatcher) -> tuple[int, int]:
    """(content words, covered content words) of ``text`` (definitions in the module docstring)."""
    units = [(u, c) for u, c in matcher.units(text, lang) if is_content_word(u, lang)]
    return len(units), sum(c for _, c in units)
