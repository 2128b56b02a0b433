"""Concept frequencies of a SynthSign store: how often training saw each concept, and evaluation groups by it.

Retrieval (SOKE's dictionary prompt) can only matter for concepts the model rarely or never saw in training, so
evaluation is read per *band* of a sentence's rarest concept:

* ``seen``: every concept of the sentence is in more than :data:`RARE_MAX` training sentences of its language;
* ``rare``: its rarest concept is in 1 .. :data:`RARE_MAX` training sentences;
* ``unseen``: it has a concept no training sentence of its language contains;

crossed with whether the dictionary split has an entry for every concept of that band in the sentence
(``in_dictionary``). A sample's concepts are its ``meta["concepts"]`` (SynthSign writes them, in sign order); a
store without them (an official corpus) has no concepts and every sentence is ``seen``.

The functions take a store (:class:`~soke_lightning.data.store.PackedStore` or its path) or, for hand-made data
and for the generator before it writes, any iterable of records: store index records (dicts with ``name``,
``lang`` and ``meta``) or :class:`~soke_lightning.data.store.Sample` objects.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from soke_lightning.data.store import PackedStore, Sample, open_store

#: A concept in at most this many training sentences (of its language) is rare; in none, unseen.
RARE_MAX = 2
#: Frequency bands, most to least frequent.
BANDS = ("seen", "rare", "unseen")

Records = Iterable[Mapping | Sample]


def _fields(record: Mapping | Sample) -> tuple[str, str, dict]:
    """(name, lang, meta) of a store record or a Sample."""
    if isinstance(record, Sample):
        return record.name, record.lang, record.meta or {}
    return record["name"], record["lang"], record.get("meta") or {}


def _records(source: PackedStore | str | os.PathLike | Records, split: str) -> Iterable[Mapping | Sample]:
    if isinstance(source, (str, os.PathLike)):
        source = open_store(source)
    if isinstance(source, PackedStore):
        if split not in source:
            raise KeyError(f"store {source.root} has no split {split!r} (it has {list(source.splits)})")
        return source.split(split).records
    return source


def sample_concepts(record: Mapping | Sample) -> list[str]:
    """A sample's concepts (``meta["concepts"]``, else ``meta["text_concepts"]``), without repeats, in order."""
    meta = _fields(record)[2]
    return list(dict.fromkeys(meta.get("concepts", meta.get("text_concepts")) or []))


def concept_frequencies(source: PackedStore | str | os.PathLike | Records, split: str = "train"
                        ) -> dict[str, Counter]:
    """Per language, how many sentences of ``split`` contain each concept (a sentence counts a concept once).

    Args:
        source: a store (or its path), whose ``split`` is read, or an iterable of records / Samples.
        split: the split of a store to count (ignored for records).

    Returns:
        ``{lang: Counter(concept -> sentences)}``; a concept absent from the Counter has count 0.
    """
    out: dict[str, Counter] = defaultdict(Counter)
    for record in _records(source, split):
        out[_fields(record)[1]].update(sample_concepts(record))
    return dict(out)


def dictionary_concepts(source: PackedStore | str | os.PathLike | Records, split: str = "dictionary"
                        ) -> dict[str, set[str]]:
    """Per language, the concepts the dictionary split has an entry for (``meta["concept"]`` of its samples)."""
    out: dict[str, set[str]] = defaultdict(set)
    for record in _records(source, split):
        _, lang, meta = _fields(record)
        if meta.get("concept") is not None:
            out[lang].add(meta["concept"])
    return dict(out)


def frequency_band(count: int, rare_max: int = RARE_MAX) -> str:
    """"unseen" for 0 training sentences, "rare" for 1 .. ``rare_max``, "seen" above."""
    if count < 0:
        raise ValueError(f"a concept count cannot be negative, got {count}")
    return "unseen" if count == 0 else ("rare" if count <= rare_max else "seen")


@dataclass(frozen=True)
class SentenceGroup:
    """Where one evaluation sentence falls.

    Attributes:
        band: the band of its rarest concept ("seen", "rare" or "unseen").
        in_dictionary: every concept of the sentence in that band has a dictionary entry (vacuously True for
            "seen" sentences).
        unseen / rare: the sentence's concepts in those bands (a sentence of band "unseen" may have rare ones).
    """

    band: str
    in_dictionary: bool
    unseen: tuple[str, ...] = ()
    rare: tuple[str, ...] = ()

    @property
    def concepts(self) -> tuple[str, ...]:
        """The concepts of the sentence's band (empty for "seen")."""
        return self.unseen if self.band == "unseen" else (self.rare if self.band == "rare" else ())

    @property
    def key(self) -> str:
        """"seen", or "rare" / "unseen" + "_dict" or "_nodict": the group name used in summaries."""
        if self.band == "seen":
            return "seen"
        return f"{self.band}_{'dict' if self.in_dictionary else 'nodict'}"


#: Every :attr:`SentenceGroup.key`, in summary order.
GROUP_KEYS = ("seen", "rare_dict", "rare_nodict", "unseen_dict", "unseen_nodict")


def sentence_group(concepts: Iterable[str], counts: Mapping[str, int], dictionary: Iterable[str],
                   rare_max: int = RARE_MAX) -> SentenceGroup:
    """The group of a sentence with ``concepts``, given its language's training ``counts`` and ``dictionary``.

    Args:
        concepts: the sentence's concepts.
        counts: concept -> training sentences of the sentence's language (missing = 0).
        dictionary: the concepts of the language with a dictionary entry.
        rare_max: the largest count that is still rare.
    """
    concepts = list(dict.fromkeys(concepts))
    bands = {c: frequency_band(counts.get(c, 0), rare_max) for c in concepts}
    unseen = tuple(c for c in concepts if bands[c] == "unseen")
    rare = tuple(c for c in concepts if bands[c] == "rare")
    band = "unseen" if unseen else ("rare" if rare else "seen")
    entries = set(dictionary)
    return SentenceGroup(band, all(c in entries for c in (unseen or rare)), unseen, rare)


def group_sentences(source: PackedStore | str | os.PathLike | Records, split: str = "test", *,
                    train: PackedStore | str | os.PathLike | Records | None = None,
                    dictionary: PackedStore | str | os.PathLike | Records | None = None,
                    rare_max: int = RARE_MAX) -> dict[str, SentenceGroup]:
    """Group the sentences of ``split`` by the training frequency of their rarest concept (see module docstring).

    Args:
        source: a store (or its path) holding ``split`` and, unless given, the ``train`` and ``dictionary``
            splits; or the evaluation records themselves (then ``train`` and ``dictionary`` are required).
        split: the evaluated split of a store.
        train: the training records (default: the store's ``train`` split).
        dictionary: the dictionary records (default: the store's ``dictionary`` split, or none if it has none).
        rare_max: the largest training count that is still rare.

    Returns:
        ``{sample name: SentenceGroup}`` in split order.
    """
    if isinstance(source, (str, os.PathLike)):
        source = open_store(source)
    if isinstance(source, PackedStore):
        train = source if train is None else train
        if dictionary is None:
            dictionary = source if "dictionary" in source else []
    elif train is None or dictionary is None:
        raise ValueError("group_sentences: give `train` and `dictionary` records when `source` is not a store")
    counts = concept_frequencies(train, "train")
    entries = dictionary_concepts(dictionary, "dictionary")
    out = {}
    for record in _records(source, split):
        name, lang, _ = _fields(record)
        out[name] = sentence_group(sample_concepts(record), counts.get(lang, Counter()), entries.get(lang, set()),
                                   rare_max)
    return out


def group_summary(groups: Mapping[str, SentenceGroup], langs: Mapping[str, str] | None = None) -> dict:
    """Counts and fractions of :data:`GROUP_KEYS` and of sentences with any tail concept.

    Args:
        groups: the output of :func:`group_sentences`.
        langs: optional sample name -> language, to add a per-language breakdown under ``"by_lang"``.

    Returns:
        ``{"sentences": n, "counts": {key: n}, "fractions": {key: f}, ["by_lang": {lang: {...}}]}`` where the
        keys are :data:`GROUP_KEYS` plus ``"tail"`` (a concept in at most ``rare_max`` training sentences, unseen
        included), ``"with_rare"`` (a concept in 1 .. ``rare_max``, whatever the band) and ``"with_unseen"``.
    """
    def summarise(selected: list[SentenceGroup]) -> dict:
        counts = Counter(g.key for g in selected)
        row = {k: counts.get(k, 0) for k in GROUP_KEYS}
        row["tail"] = sum(g.band != "seen" for g in selected)
        row["with_rare"] = sum(bool(g.rare) for g in selected)
        row["with_unseen"] = sum(bool(g.unseen) for g in selected)
        n = len(selected)
        return {"sentences": n, "counts": row, "fractions": {k: (v / n if n else 0.0) for k, v in row.items()}}

    out = summarise(list(groups.values()))
    if langs is not None:
        by_lang: dict[str, list[SentenceGroup]] = defaultdict(list)
        for name, group in groups.items():
            by_lang[langs[name]].append(group)
        out["by_lang"] = {lang: summarise(sel) for lang, sel in sorted(by_lang.items())}
    return out
