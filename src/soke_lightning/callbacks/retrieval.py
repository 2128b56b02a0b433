"""RetrievalCallback: puts retrieved dictionary signs into the encoder prompt of every batch (docs/design.md §4.4, §5).

For each sample the callback sets ``batch.prompt[i]`` to the sentence followed by the retrieval string of
:func:`soke_lightning.retrieval.matcher.build_prompt` (e.g. ``"... Key word 1, <body_5><lhand_3><rhand_7>..."``)
in ``on_{train,validation,test,predict}_batch_start``; the LM stage encodes ``batch.prompt`` when it is set, so
training, validation, test and prediction all see the same format. Nothing but ``batch.prompt`` is changed.
Retrieval off (the ablation) = no callback, or ``enabled: false``. The LM stage can also create this callback itself
from one plain switch (``LMStage(retrieval=True, retrieval_settings={...})``, what sweeps toggle).

The dictionary is loaded once per run in ``setup`` on every rank (read-only). When the file does not exist and
``tokenizer`` names a stage-1 checkpoint, global rank 0 builds it from the DataModule's ``build_split`` (SynthSign:
``dictionary``) with that tokenizer and writes it, the other ranks wait at a barrier and then load it.

The dictionary must come from the model's tokenizer: the expected hash is the LightningModule's
``tokenizer_digest`` or ``tokenizer_hash`` attribute (a string; LMStage has ``tokenizer_digest``), else the hash
of its ``tokenizer`` attribute when that is a :class:`~soke_lightning.models.tokenizer.SignTokenizer`, else the
hash of the ``tokenizer`` checkpoint given here; another hash is refused in ``setup``
(:class:`~soke_lightning.retrieval.dictionary.DictionaryMismatchError`), as are other parts / codebook sizes.
At the first batch (LMStage builds or restores its text tokenizer after the callbacks' ``setup``) the module's
``text_tokenizer`` (a :class:`~soke_lightning.models.text_tokenizer.TextTokenizer`), if any, is bound: its motion
vocabulary is checked against the dictionary and it counts the prompts' tokens exactly.

Matching: the ``words`` matcher also finds the dictionary's aliases (other surface forms of an entry: SynthSign
dictionaries built by ``soke dict build`` carry every plural / conjugation / declension its sentences use);
``inflection: suffix`` adds a word + inflection-suffix fallback for English / German text whose dictionary has no
aliases (off by default, SOKE parity). With ``LMStage(retrieval=True)`` it is
``--model.init_args.retrieval_settings.inflection=suffix``.

Recipe options (each defaults to SOKE's behaviour; docs/design.md §5.2-5.3):

* ``separator``: "index" (SOKE's latest code, ``" Key word i, <codes>"``) or "word" (word-anchored,
  ``" Key word i, <word>: <codes>"``; the budget counts the words).
* ``order``: "longest" (SOKE), "text", or "rarest": rarest words first by document frequency in the training texts
  (how many training sentences of the language contain the word, found with the same matcher). The table
  (:attr:`RetrievalCallback.frequency`) is computed in ``setup`` from the DataModule's training split on every rank
  (deterministic, so no broadcast), also when evaluating, so evaluation orders entries as training did.
* ``entry_dropout`` / ``block_dropout`` (training only, default 0): each retrieved entry, or the whole retrieval
  block of a sample, is dropped with that probability (:func:`~soke_lightning.retrieval.matcher.drop_entries`).
* ``exemplar``: "first" (SOKE: a word's first exemplar) or "random_train" (a uniformly drawn exemplar per training
  step; evaluation always uses the first); "oracle" is a diagnostic, not a recipe: every stage puts the sentence's
  OWN codes of each retrieved sign's span into the prompt (:func:`~soke_lightning.retrieval.matcher.own_span_entries`;
  needs a corpus that records concepts and spans, i.e. SynthSign, and batches with codes) - can the model copy at
  all when the prompt holds exactly the answer?
* ``known_words`` / ``lexicon`` (``words`` matcher): known words that retrieve nothing and block the dictionary
  words inside them ("builtin": :data:`~soke_lightning.retrieval.matcher.KNOWN_WORDS`, Chinese 为什么 / 开车 / 没有
  ...; ``lexicon``: more words per language, a mapping or a JSON file ``{"csl": ["为什么", ...]}``).

The random draws of training (dropout, exemplar) come from a generator per sample seeded with (``seed``,
``trainer.global_step``, sample key) (:func:`sample_generator`): reproducible, independent of the DDP rank, batch
composition and data-loader workers, and different at every step. ``seed`` None takes Lightning's global seed
(``PL_GLOBAL_SEED``, set by ``seed_everything``) or 0. Validation, test and prediction never drop and always take
the first exemplar. Coverage numbers describe the retrieval before dropout, with the first exemplars.

Prompt length: ``max_prompt_tokens`` is the budget of the WHOLE encoder input including ``</s>`` and the language
code; by default the module's ``hparams.max_source_length`` (SOKE truncates at 256). Entries that do not fit are
dropped whole, from the last one (a rank-zero warning the first time; the share of such prompts is logged), so
the LM never cuts retrieval mid-sign. Without a ``text_tokenizer`` the count is an upper bound
(:func:`~soke_lightning.retrieval.matcher.approximate_token_count`).

Resume: the callback's checkpoint state records the dictionary (path, content digest
:func:`dictionary_digest`, tokenizer hash) and the prompt settings. Resuming a fit (``ckpt_path``) with another
dictionary content or other settings is refused (:class:`RetrievalResumeError`) because the model would continue
on different prompts; a dictionary that was moved, or deleted and rebuilt from the same data and tokenizer, has the
same digest and is accepted. Evaluating (validate/test/predict) a checkpoint with another dictionary only warns.

Coverage (``log_coverage``), per stage and language, summed over ranks at epoch end and logged as
``{train,val,test}/retrieval/{lang}/{sentence_hit_rate, content_word_coverage, entries_per_sentence,
truncated_share}``: sentences with at least one dictionary hit; content words covered by the dictionary (see
:func:`~soke_lightning.retrieval.matcher.content_coverage`); entries injected per sentence; prompts whose retrieval
was cut by the budget. Each sample key is counted once per epoch and rank. Prediction has no logger: the numbers
go to the log and to :attr:`RetrievalCallback.coverage`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from soke_lightning.core.batch import SignBatch
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.data.datamodule import split_datasets
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
from soke_lightning.retrieval.dictionary import (
    DictionaryError,
    SignDictionary,
    build_dictionary,
    normalize_word,
)
from soke_lightning.retrieval.matcher import (
    INFLECTIONS,
    KNOWN_WORD_SOURCES,
    MATCHERS,
    ORDERS,
    SEPARATORS,
    Match,
    RetrievedEntry,
    WordMatcher,
    content_coverage,
    document_frequency,
    drop_entries,
    fit_to_budget,
    get_matcher,
    own_span_entries,
    select,
    spell_entries,
)

log = logging.getLogger(__name__)

#: Columns of the per-language coverage sums.
_STATS = ("sentences", "hit", "content_words", "covered", "entries", "truncated")
_STAGE_PREFIX = {"train": "train", "validation": "val", "test": "test", "predict": "predict"}
#: Values of the ``exemplar`` option: a word's first exemplar, a random one per training step, or the oracle (the
#: sentence's own codes of the sign's span; a diagnostic upper bound).
EXEMPLARS = ("first", "random_train", "oracle")
#: Settings that shape the prompts: a resumed fit must use the same values.
PROMPT_SETTINGS = ("top_k", "max_codes_per_entry", "order", "matcher", "max_prompt_tokens", "inflection",
                   "separator", "entry_dropout", "block_dropout", "exemplar", "seed", "known_words", "lexicon")
#: Settings added after checkpoints were first written, with the value those checkpoints implicitly used; they are
#: recorded only when they differ from it, so a run with the defaults writes the checkpoint state it wrote before.
_SETTING_DEFAULTS = {"inflection": "none", "separator": "index", "entry_dropout": 0.0, "block_dropout": 0.0,
                     "exemplar": "first", "seed": None, "known_words": "none", "lexicon": None}


def check_settings(settings: Mapping[str, Any]) -> None:
    """Validate the values of RetrievalCallback arguments (the keys present; unknown keys are not checked here).

    Used by :class:`RetrievalCallback` and by the LM stage's ``retrieval_settings``, so a bad value fails when the
    config is read, not at the first batch.

    Raises:
        ValueError: naming the setting, the value, the valid values and the fix.
    """
    def choice(name: str, valid: tuple) -> None:
        if name in settings and settings[name] not in valid:
            raise ValueError(f"retrieval setting {name}={settings[name]!r} is not one of {list(valid)}")

    choice("order", ORDERS)
    choice("matcher", tuple(MATCHERS))
    choice("inflection", INFLECTIONS)
    choice("separator", SEPARATORS)
    choice("exemplar", EXEMPLARS)
    choice("known_words", KNOWN_WORD_SOURCES)
    for name in ("entry_dropout", "block_dropout"):
        p = settings.get(name, 0.0)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"retrieval setting {name}={p!r} must be a probability in [0, 1] (0 = SOKE: no "
                             f"dropout)")
    seed = settings.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"retrieval setting seed={seed!r} must be a non-negative integer or None (None: Lightning's "
                         f"global seed, else 0)")
    budget = settings.get("max_prompt_tokens")
    if budget is not None and budget < 3:
        raise ValueError(f"retrieval setting max_prompt_tokens={budget!r} must be >= 3 or None")
    matcher = settings.get("matcher", WordMatcher.name)
    for name, neutral in (("inflection", "none"), ("known_words", "none"), ("lexicon", None)):
        if settings.get(name, neutral) not in (neutral, {}) and matcher != WordMatcher.name:
            raise ValueError(f"retrieval setting {name}={settings[name]!r} needs matcher 'words' (got {matcher!r}, "
                             f"which matches raw substrings); use matcher 'words' or {name}={neutral!r}")
    lexicon = settings.get("lexicon")
    if lexicon is not None and not isinstance(lexicon, (str, os.PathLike, Mapping)):
        raise ValueError(f"retrieval setting lexicon={lexicon!r} must be a JSON file path or a mapping language key "
                         f"-> list of words ({{'csl': ['为什么']}})")


def load_lexicon(lexicon: str | os.PathLike | Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    """The known words of the ``lexicon`` option: a mapping language key -> words, or a JSON file holding one.

    Raises:
        DictionaryError: the file is missing, not JSON or not such a mapping (naming it and the expected shape).
    """
    if lexicon is None:
        return None
    source = lexicon
    if not isinstance(lexicon, Mapping):
        path = Path(lexicon)
        if not path.is_file():
            raise DictionaryError(f"retrieval lexicon {path} does not exist; give a JSON file "
                                  f"{{\"csl\": [\"为什么\", ...]}} or lexicon: null")
        try:
            lexicon = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DictionaryError(f"retrieval lexicon {path} is not valid JSON ({err})") from None
    if not isinstance(lexicon, Mapping) or not all(
            isinstance(words, list) and all(isinstance(w, str) for w in words) for words in lexicon.values()):
        raise DictionaryError(f"retrieval lexicon {source}: expected a mapping language key -> list of words "
                              f"({{\"csl\": [\"为什么\", ...]}}), got {type(lexicon).__name__}")
    unknown = sorted(set(lexicon) - set(LANGUAGES))
    if unknown:
        raise DictionaryError(f"retrieval lexicon {source}: unknown language keys {unknown}; valid: "
                              f"{sorted(LANGUAGES)}")
    return {lang: list(words) for lang, words in lexicon.items()}


def sample_generator(seed: int, step: int, key: str, stream: str) -> np.random.Generator:
    """The generator of one sample's training-time draws: a function of (seed, step, sample key, stream) only.

    Independent of the DDP rank, the batch and the data-loader workers; ``stream`` ("dropout", "exemplar")
    separates the draws of different options, so switching one on does not change the other's.
    """
    digest = hashlib.sha256(f"{stream}\0{key}".encode()).digest()  # not hash(): salted per process
    return np.random.default_rng([int(seed), int(step), int.from_bytes(digest[:8], "little")])


class RetrievalResumeError(DictionaryError):
    """A resumed run would use another retrieval dictionary or other prompt settings than the interrupted one."""


def dictionary_digest(dictionary: SignDictionary) -> str:
    """sha256 of what a dictionary means to the model: tokenizer hash, parts, codebook sizes and every entry.

    The free-form ``info`` (build paths) is left out, so a copied, moved or rebuilt dictionary with the same
    entries has the same digest. Aliases change what is retrieved and count when there are any (a dictionary
    without aliases has the digest it had before aliases existed).
    """
    data = dictionary.to_json()
    canonical = {k: data[k] for k in ("tokenizer_hash", "parts", "codebook_sizes", "entries", "aliases") if k in data}
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def saved_frequency(checkpoint: Mapping[str, Any]) -> dict[str, dict[str, int]] | None:
    """The ``order="rarest"`` document-frequency table a checkpoint's retrieval callback recorded (None: none)."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith(RetrievalCallback.__name__) and isinstance(state, Mapping) and state.get("frequency"):
            return {lang: dict(words) for lang, words in state["frequency"].items()}
    return None


class RetrievalCallback(Callback):
    """Retrieval-enhanced prompts for the LM stage.

    Args:
        dictionary: path of the sign dictionary (``soke dict build`` / ``soke dict import``).
        top_k: entries per sentence (SOKE: 3); None = every hit.
        max_codes_per_entry: code steps per entry, linspace-subsampled (SOKE: 10); None = all.
        order: "longest" (SOKE: longest keys first), "text" (first hits in text order) or "rarest" (rarest in the
            DataModule's training texts first; see the module docstring).
        matcher: "words" (per-language word / phrase / Chinese segmentation matcher, with the dictionary's aliases)
            or "soke_substring" (parity).
        max_prompt_tokens: token budget of the whole encoder input (incl. ``</s>`` and the language code);
            None = the module's ``hparams.max_source_length`` (LMStage: 256), or no limit if it has none.
        log_coverage: accumulate and log coverage (see the module docstring).
        enabled: False leaves every batch untouched (the retrieval-off ablation from the same config).
        tokenizer: stage-1 checkpoint; used to build a missing dictionary and, when the module exposes no
            tokenizer hash, as the expected tokenizer.
        build_split: DataModule split of isolated signs a missing dictionary is built from.
        inflection: the ``words`` matcher's inflection fallback for English / German: "none" (SOKE parity) or
            "suffix" (a word plus an inflection suffix also matches: "cups" -> cup; see
            :mod:`soke_lightning.retrieval.matcher`). Also applies to the coverage numbers.
        separator: "index" (SOKE: ``" Key word i, <codes>"``) or "word" (``" Key word i, <word>: <codes>"``).
        entry_dropout: training only: probability that each retrieved entry is dropped (SOKE: 0).
        block_dropout: training only: probability that a sample's whole retrieval block is dropped (SOKE: 0).
        exemplar: "first" (SOKE: a word's first exemplar), "random_train" (a random exemplar per training step;
            evaluation takes the first) or "oracle" (diagnostic: the sentence's own codes of the sign's span, in
            every stage; see the module docstring).
        seed: seed of the training-time draws (with the global step and the sample key); None = Lightning's
            global seed (``PL_GLOBAL_SEED``) or 0.
        known_words: ``words`` matcher: "none" (only dictionary words segment the text) or "builtin" (also the
            built-in common Chinese words, which block the dictionary words inside them: 什么 in 为什么).
        lexicon: ``words`` matcher: more known words, a mapping language key -> words or a JSON file of one.
    """

    def __init__(self, dictionary: str, top_k: int | None = 3, max_codes_per_entry: int | None = 10,
                 order: Literal["longest", "text", "rarest"] = "longest",
                 matcher: Literal["words", "soke_substring"] = "words", max_prompt_tokens: int | None = None,
                 log_coverage: bool = True, enabled: bool = True, tokenizer: str | None = None,
                 build_split: str = "dictionary", inflection: Literal["none", "suffix"] = "none",
                 separator: Literal["index", "word"] = "index", entry_dropout: float = 0.0,
                 block_dropout: float = 0.0, exemplar: Literal["first", "random_train", "oracle"] = "first",
                 seed: int | None = None, known_words: Literal["none", "builtin"] = "none",
                 lexicon: str | dict[str, list[str]] | None = None):
        super().__init__()
        try:
            check_settings({"order": order, "matcher": matcher, "inflection": inflection, "separator": separator,
                            "exemplar": exemplar, "known_words": known_words, "entry_dropout": entry_dropout,
                            "block_dropout": block_dropout, "seed": seed, "max_prompt_tokens": max_prompt_tokens,
                            "lexicon": lexicon})
        except ValueError as err:
            raise ValueError(f"RetrievalCallback: {err}") from None
        self.dictionary_path = Path(dictionary)
        self.top_k = top_k
        self.max_codes_per_entry = max_codes_per_entry
        self.order = order
        self.matcher_name = matcher
        self.max_prompt_tokens = max_prompt_tokens
        self.log_coverage = log_coverage
        self.enabled = enabled
        self.tokenizer = tokenizer
        self.build_split = build_split
        self.inflection = inflection
        self.separator = separator
        self.entry_dropout = float(entry_dropout)
        self.block_dropout = float(block_dropout)
        self.exemplar = exemplar
        self.seed = seed
        self.known_words = known_words
        self.lexicon = load_lexicon(lexicon)
        #: ``order="rarest"``: language key -> word -> training sentences containing it (computed in ``setup``).
        self.frequency: dict[str, dict[str, int]] | None = None
        self.dictionary: SignDictionary | None = None
        #: stage -> language -> {sentence_hit_rate, content_word_coverage, entries_per_sentence, truncated_share,
        #: sentences} of the last finished epoch (summed over ranks).
        self.coverage: dict[str, dict[str, dict[str, float]]] = {}
        self._matcher = None
        self._word_matcher: WordMatcher | None = None
        self._count_tokens = None
        self._cache: dict[tuple[str, str], tuple[str, np.ndarray, list[Match]]] = {}
        self._seed = 0  # resolved in setup
        self._sums: dict[str, np.ndarray] = {}
        self._seen: dict[str, set[str]] = {}
        self._warned = False
        self._bound = False
        self._rate = 4
        self._budget: int | None = max_prompt_tokens
        self._trainer: Trainer | None = None
        #: ``exemplar="oracle"``: sample key -> (concepts, spans, stored frames); (lang, word) -> concept.
        self._spans: dict[str, tuple[list[str], list, int]] = {}
        self._concepts: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------------------------------------- set-up
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer  # load_state_dict needs to know whether this is a resumed fit
        if not self.enabled or self.dictionary is not None:
            return
        expected, source = self._expected_hash(pl_module)
        if not self.dictionary_path.is_file():
            self._build_missing(trainer, expected)
        self.dictionary = SignDictionary.load(self.dictionary_path)
        if expected is not None:
            tok = getattr(pl_module, "tokenizer", None)
            self.dictionary.check_tokenizer(expected, source=source, parts=getattr(tok, "parts", None),
                                            codebook_sizes=getattr(tok, "codebook_sizes", None))
        else:
            rank_zero_warn(f"RetrievalCallback: {type(pl_module).__name__} exposes no tokenizer_digest / "
                           f"tokenizer_hash / tokenizer and no `tokenizer` checkpoint was given, so the dictionary "
                           f"{self.dictionary_path} (tokenizer hash {self.dictionary.tokenizer_hash[:16]}) cannot be "
                           f"checked against the model")
        self._matcher = get_matcher(self.matcher_name, self.dictionary, self.inflection, self.known_words,
                                    self.lexicon)
        self._word_matcher = WordMatcher(self.dictionary, inflection=self.inflection, known_words=self.known_words,
                                         lexicon=self.lexicon)
        # the same on every rank: seed_everything sets PL_GLOBAL_SEED in every process
        self._seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        if self.exemplar == "oracle" and not self._spans:
            self._spans, self._concepts = self._oracle_tables(trainer)
        if self.order == "rarest" and self.frequency is None:
            self.frequency = document_frequency(self._training_texts(trainer), self._matcher)
            rank_zero_info(f"RetrievalCallback: order 'rarest': document frequency of "
                           f"{ {k: len(v) for k, v in self.frequency.items()} } matched words from the training "
                           f"split")
        aliases = {k: n for k, s in self.dictionary.summary().items() if (n := s["aliases"])}
        rank_zero_info(f"RetrievalCallback: {len(self.dictionary)} dictionary entries "
                       f"{ {k: len(v) for k, v in self.dictionary.entries.items()} } (aliases {aliases}) from "
                       f"{self.dictionary_path}, matcher {self.matcher_name}, inflection {self.inflection}, "
                       f"top-{self.top_k}, <= {self.max_codes_per_entry} codes, order {self.order}, separator "
                       f"{self.separator}, exemplar {self.exemplar}, dropout entry {self.entry_dropout} / block "
                       f"{self.block_dropout}, known words {self.known_words}"
                       f"{' + lexicon' if self.lexicon else ''}")

    def _training_texts(self, trainer: Trainer) -> list[tuple[str, str]]:
        """(sentence, language key) of every sample of the DataModule's training split (all of it, every rank)."""
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "stores"):
            raise ValueError(f"RetrievalCallback: order 'rarest' ranks words by their frequency in the training texts, "
                             f"read from the trainer's SignDataModule, but it has none (got {type(dm).__name__}); "
                             f"run with a SignDataModule or use order 'longest'")
        datasets = split_datasets(dm, ["train"])
        if "train" not in datasets:
            raise ValueError(f"RetrievalCallback: order 'rarest' needs the training split "
                             f"{dm.split_names.get('train')!r}, which none of the stores {list(dm.stores)} has; use "
                             f"order 'longest'")
        ds = datasets["train"]
        return [(r["text"], r["lang"]) for r in map(ds.record, range(len(ds)))]

    def _oracle_tables(self, trainer: Trainer) -> tuple[dict, dict]:
        """``exemplar="oracle"``: the signed concepts and spans of every sample, and each dictionary word's concept,
        from the DataModule's splits (SynthSign records them in ``meta``)."""
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "stores"):
            raise ValueError(f"RetrievalCallback: exemplar 'oracle' reads the sentences' sign spans from the trainer's "
                             f"SignDataModule, but it has none (got {type(dm).__name__})")
        datasets = split_datasets(dm, ["train", "val", "test", self.build_split])
        spans, concepts = {}, {}
        for split, ds in datasets.items():
            for r in map(ds.record, range(len(ds))):
                meta = r.get("meta") or {}
                if split == self.build_split and meta.get("concept") is not None:
                    concepts[(r["lang"], normalize_word(r["text"]))] = meta["concept"]
                elif meta.get("spans") is not None and meta.get("concepts") is not None:
                    spans[f"{r['corpus']}/{r['name']}"] = (list(meta["concepts"]), meta["spans"], int(r["length"]))
        if not spans or not concepts:
            raise ValueError(f"RetrievalCallback: exemplar 'oracle' needs sentences with meta 'concepts' / 'spans' and "
                             f"a {self.build_split!r} split with meta 'concept' (SynthSign); the stores {list(dm.stores)} "
                             f"have {len(spans)} such sentences and {len(concepts)} such dictionary words")
        return spans, concepts

    def _oracle_prompt(self, text: str, lang: str, key: str, codes: torch.Tensor, step: int | None) -> str | None:
        """The prompt with each entry's codes replaced by the sample's own span codes (None: no spans known)."""
        meta = self._spans.get(key)
        if meta is None:
            return None
        entries = spell_entries(self._retrieve(text, lang)[2], self.dictionary, self.max_codes_per_entry)
        concepts, spans, frames = meta
        own = codes[codes[:, 0] >= 0].cpu().numpy()
        entries = own_span_entries(entries, lambda lg, w: self._concepts.get((lg, w)), concepts, spans, frames, own,
                                   self._rate, self.max_codes_per_entry, strict=False)
        if step is not None and (self.entry_dropout > 0 or self.block_dropout > 0):
            entries = drop_entries(entries, sample_generator(self._seed, step, key, "dropout"), self.entry_dropout,
                                   self.block_dropout)
        return fit_to_budget(text, lang, entries, self.dictionary.parts, self._budget, self._count_tokens,
                             separator=self.separator)[0]

    def _bind_text_tokenizer(self, pl_module: LightningModule) -> None:
        """At the first batch (the LM stage builds or restores its text tokenizer after the callbacks' setup):
        check its motion vocabulary, count tokens with it, take the budget from ``max_source_length``."""
        self._bound = True
        text_tok = getattr(pl_module, "text_tokenizer", None)
        motion = getattr(text_tok, "motion", None)
        if motion is not None:
            self.dictionary.check_tokenizer(self.dictionary.tokenizer_hash, parts=motion.parts,
                                            codebook_sizes=dict(zip(motion.parts, motion.codebook_sizes)),
                                            source=f"the motion vocabulary of {type(pl_module).__name__}")
        self._count_tokens = getattr(text_tok, "count_tokens", None)
        self._rate = int(getattr(getattr(pl_module, "tokenizer", None), "downsample_rate", 4))
        if self.max_prompt_tokens is None:
            self._budget = pl_module.hparams.get("max_source_length")
        else:
            self._budget = self.max_prompt_tokens
        self._cache.clear()

    def _expected_hash(self, pl_module: LightningModule) -> tuple[str | None, str]:
        for attr in ("tokenizer_digest", "tokenizer_hash"):
            digest = getattr(pl_module, attr, None)
            if isinstance(digest, str):
                return digest, f"{type(pl_module).__name__}.{attr}"
        tok = getattr(pl_module, "tokenizer", None)
        if isinstance(tok, SignTokenizer):
            return tokenizer_hash(tok), f"{type(pl_module).__name__}.tokenizer"
        if self.tokenizer is not None:
            return tokenizer_hash(self.tokenizer), f"tokenizer checkpoint {self.tokenizer}"
        return None, ""

    def _build_missing(self, trainer: Trainer, expected: str | None) -> None:
        if self.tokenizer is None:
            raise DictionaryError(
                f"sign dictionary {self.dictionary_path} does not exist. Build it with `soke dict build --tokenizer "
                f"CKPT --data DATAMODULE_YAML --out {self.dictionary_path}`, import the official one with `soke dict "
                f"import`, or give the callback `tokenizer: CKPT` to build it from the DataModule's "
                f"{self.build_split!r} split")
        if trainer.is_global_zero:
            dm = trainer.datamodule
            if dm is None or not hasattr(dm, "stores"):
                raise DictionaryError(f"cannot build {self.dictionary_path}: the trainer has no SignDataModule "
                                      f"(got {type(dm).__name__}); build it with `soke dict build`")
            tok = SignTokenizer.from_checkpoint(self.tokenizer)
            digest = tokenizer_hash(tok)
            datasets = split_datasets(dm, [self.build_split])
            if self.build_split not in datasets:
                raise DictionaryError(f"cannot build {self.dictionary_path}: no {self.build_split!r} split in the "
                                      f"stores {list(dm.stores)}")
            built = build_dictionary(tok, [datasets[self.build_split]], tokenizer_hash=digest,
                                     info={"tokenizer": str(Path(self.tokenizer).resolve()),
                                           "sources": [str(s) for s in dm.stores], "split": self.build_split})
            built.save(self.dictionary_path)
            rank_zero_info(f"RetrievalCallback: built {self.dictionary_path} ({len(built)} entries)")
        trainer.strategy.barrier("retrieval_dictionary")

    # ------------------------------------------------------------------------------------------- checkpoints
    def settings(self) -> dict:
        """The prompt-shaping settings (:data:`PROMPT_SETTINGS`) as a plain dict; a later-added setting
        (``inflection``, ``separator``, the dropouts, ``exemplar``, ``seed``, ``known_words``, ``lexicon`` as a
        digest) only when it is not its default (see ``_SETTING_DEFAULTS``)."""
        values = {"top_k": self.top_k, "max_codes_per_entry": self.max_codes_per_entry, "order": self.order,
                  "matcher": self.matcher_name, "max_prompt_tokens": self.max_prompt_tokens,
                  "inflection": self.inflection, "separator": self.separator, "entry_dropout": self.entry_dropout,
                  "block_dropout": self.block_dropout, "exemplar": self.exemplar, "seed": self.seed,
                  "known_words": self.known_words, "lexicon": self._lexicon_digest()}
        return {k: v for k, v in values.items() if k not in _SETTING_DEFAULTS or v != _SETTING_DEFAULTS[k]}

    def _lexicon_digest(self) -> str | None:
        """The lexicon as the resume state records it: a digest of its words (a moved file is the same lexicon)."""
        if not self.lexicon:
            return None
        canonical = json.dumps({k: sorted(v) for k, v in self.lexicon.items()}, sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def state_dict(self) -> dict:
        """What resumes: on/off, the dictionary (resolved path, content digest, tokenizer hash) and the settings."""
        if not self.enabled:
            return {"enabled": False}
        if self.dictionary is None:
            raise RuntimeError("RetrievalCallback.state_dict: no dictionary loaded (setup was not called)")
        state = {"enabled": True, "dictionary": str(self.dictionary_path.resolve()),
                 "digest": dictionary_digest(self.dictionary), "tokenizer_hash": self.dictionary.tokenizer_hash,
                 "entries": len(self.dictionary), "settings": self.settings()}
        if self.order == "rarest" and self.frequency is not None:
            state["frequency"] = self.frequency  # so generation orders entries as training did, without the data
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Refuse to resume a fit with another dictionary content or other prompt settings (see module docstring).

        Lightning calls this after ``setup`` (the dictionary is loaded, or built when it was missing), when the
        trainer restores a checkpoint that holds this callback's state.
        """
        fitting = self._trainer is not None and self._trainer.state.fn == "fit"
        problems = []
        if bool(state_dict.get("enabled")) != self.enabled:
            problems.append(f"retrieval was {'on' if state_dict.get('enabled') else 'off'} in the checkpoint but is "
                            f"{'on' if self.enabled else 'off'} now")
        elif self.enabled:
            digest = dictionary_digest(self.dictionary)
            if state_dict["digest"] != digest:
                problems.append(f"dictionary {self.dictionary_path} has content digest {digest[:16]} "
                                f"({len(self.dictionary)} entries) but the checkpoint was trained with "
                                f"{state_dict['dictionary']} of digest {state_dict['digest'][:16]} "
                                f"({state_dict.get('entries')} entries)")
            saved = {**_SETTING_DEFAULTS, **state_dict.get("settings", {})}
            now = {**_SETTING_DEFAULTS, **self.settings()}
            changed = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
            if changed:
                problems.append("prompt settings (checkpoint, now): " +
                                ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in changed.items()))
            if not problems and Path(state_dict["dictionary"]) != self.dictionary_path.resolve():
                log.info("RetrievalCallback: the dictionary moved from %s to %s (same content)",
                         state_dict["dictionary"], self.dictionary_path)
        if not problems:
            return
        message = "RetrievalCallback: " + "; ".join(problems)
        if fitting:
            raise RetrievalResumeError(
                f"{message}. A resumed run must see the prompts the interrupted run saw: resume with the original "
                f"dictionary file and settings, or start a new run (no --ckpt_path) to train with these")
        rank_zero_warn(f"{message} (evaluating with the current ones)")

    # ------------------------------------------------------------------------------------------- injection
    def attach(self, pl_module: LightningModule, datamodule=None) -> RetrievalCallback:
        """Ready the callback outside a Trainer (offline evaluation, e.g. `soke claims`), as ``setup`` and the
        first batch would: load and check the dictionary, build the ``rarest`` frequency table from
        ``datamodule``'s training split, bind ``pl_module``'s text tokenizer and prompt budget.

        Returns:
            self.
        """
        self.setup(SimpleNamespace(datamodule=datamodule, is_global_zero=True), pl_module, "test")
        if self.enabled:
            self._bind_text_tokenizer(pl_module)
        return self

    def entries(self, text: str, lang: str) -> list[RetrievedEntry]:
        """The evaluation entries of one sentence (selected and spelt, before the token budget)."""
        return spell_entries(self._retrieve(text, lang)[2], self.dictionary, self.max_codes_per_entry)

    def format_entries(self, text: str, lang: str, entries: Sequence[RetrievedEntry]) -> str:
        """The prompt of ``text`` with the given ``entries`` (e.g. controls with other codes), fitted to the
        budget with this callback's separator and token counter, as the evaluation prompt is."""
        return fit_to_budget(text, lang, entries, self.dictionary.parts, self._budget, self._count_tokens,
                             separator=self.separator)[0]

    def prompt(self, text: str, lang: str) -> str:
        """The evaluation prompt of one sentence (what validation / test / predict show the model; training too
        when no training-time draw is switched on)."""
        return self._retrieve(text, lang)[0]

    @property
    def random_in_training(self) -> bool:
        """Whether training prompts depend on per-step draws (dropout or ``exemplar="random_train"``)."""
        return self.entry_dropout > 0 or self.block_dropout > 0 or self.exemplar == "random_train"

    def training_prompt(self, text: str, lang: str, key: str, step: int) -> str:
        """The training prompt of one sample at global step ``step``: the evaluation entries with, when switched
        on, a random exemplar each and retrieval dropout, drawn from :func:`sample_generator` (reproducible,
        rank-independent), then fitted to the budget."""
        if not self.random_in_training:
            return self.prompt(text, lang)
        matches = self._retrieve(text, lang)[2]
        rng = sample_generator(self._seed, step, key, "exemplar") if self.exemplar == "random_train" else None
        entries = spell_entries(matches, self.dictionary, self.max_codes_per_entry, rng)
        if self.entry_dropout > 0 or self.block_dropout > 0:
            entries = drop_entries(entries, sample_generator(self._seed, step, key, "dropout"), self.entry_dropout,
                                   self.block_dropout)
        return fit_to_budget(text, lang, entries, self.dictionary.parts, self._budget, self._count_tokens,
                             separator=self.separator)[0]

    def _retrieve(self, text: str, lang: str) -> tuple[str, np.ndarray, list[Match]]:
        key = (text, lang)
        hit = self._cache.get(key)
        if hit is None:
            matches = select(self._matcher.match(text, lang), self.top_k, self.order, self.frequency)
            entries = spell_entries(matches, self.dictionary, self.max_codes_per_entry)
            prompt, kept = fit_to_budget(text, lang, entries, self.dictionary.parts, self._budget,
                                         self._count_tokens, separator=self.separator)
            content, covered = content_coverage(text, lang, self._word_matcher)
            stats = np.array([1, bool(entries), content, covered, len(kept), len(kept) < len(entries)], np.float64)
            if len(kept) < len(entries) and not self._warned:
                self._warned = True
                rank_zero_warn(f"RetrievalCallback: the prompt of {text[:60]!r} exceeds the budget of "
                               f"{self._budget} tokens; {len(entries) - len(kept)} of {len(entries)} retrieved "
                               f"entries dropped (further cases are counted in */retrieval/*/truncated_share)")
            hit = self._cache[key] = (prompt, stats, matches)
        return hit

    def _inject(self, trainer: Trainer, pl_module: LightningModule, batch, stage: str) -> None:
        if not self.enabled:
            return
        if not isinstance(batch, SignBatch):
            raise TypeError(f"RetrievalCallback needs SignBatch batches, got {type(batch).__name__}")
        if self.dictionary is None:
            raise RuntimeError("RetrievalCallback: no dictionary loaded (setup was not called)")
        if not self._bound:
            self._bind_text_tokenizer(pl_module)
        prompts = []
        sums = self._sums.setdefault(stage, np.zeros((len(LANGUAGES), len(_STATS))))
        seen = self._seen.setdefault(stage, set())
        langs = list(LANGUAGES)
        # only training draws: evaluation never drops and always takes the first exemplar
        step = trainer.global_step if stage == "train" and self.random_in_training else None
        oracle = self.exemplar == "oracle"
        if oracle and batch.codes is None:
            raise ValueError("RetrievalCallback: exemplar 'oracle' needs the batches' target codes (a token cache); "
                             "this batch has none")
        for i, (text, lang, key) in enumerate(zip(batch.text, batch.lang, batch.keys)):
            prompt, stats, _ = self._retrieve(text, lang)
            if oracle:
                own = self._oracle_prompt(text, lang, key, batch.codes[i], step)
                prompt = prompt if own is None else own
            elif step is not None:
                prompt = self.training_prompt(text, lang, key, step)
            prompts.append(prompt)
            if self.log_coverage and key not in seen:
                seen.add(key)
                sums[langs.index(lang)] += stats
        batch.prompt = prompts

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._inject(trainer, pl_module, batch, "train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._inject(trainer, pl_module, batch, "validation")

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._inject(trainer, pl_module, batch, "test")

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._inject(trainer, pl_module, batch, "predict")

    # ---------------------------------------------------------------------------------------------- coverage
    def _reset(self, stage: str) -> None:
        self._sums.pop(stage, None)
        self._seen.pop(stage, None)

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not (self.enabled and self.log_coverage):
            return
        local = self._sums.get(stage, np.zeros((len(LANGUAGES), len(_STATS))))
        total = trainer.strategy.reduce(torch.tensor(local, device=pl_module.device), reduce_op="sum")
        total = total.detach().cpu().numpy()
        self._reset(stage)
        results = {}
        for lang, row in zip(LANGUAGES, total):
            s = dict(zip(_STATS, row))
            if s["sentences"] == 0:
                continue
            results[lang] = {
                "sentences": float(s["sentences"]),
                "sentence_hit_rate": s["hit"] / s["sentences"],
                "content_word_coverage": s["covered"] / s["content_words"] if s["content_words"] else 0.0,
                "entries_per_sentence": s["entries"] / s["sentences"],
                "truncated_share": s["truncated"] / s["sentences"],
            }
        self.coverage[stage] = results
        if stage == "predict" or trainer.sanity_checking:
            if stage == "predict":
                rank_zero_info(f"RetrievalCallback coverage ({stage}): {results}")
            return
        prefix = _STAGE_PREFIX[stage]
        for lang, values in results.items():
            for name, value in values.items():
                if name != "sentences":
                    pl_module.log(f"{prefix}/retrieval/{lang}/{name}", float(value), sync_dist=False,
                                  add_dataloader_idx=False)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reset("train")

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._reset("validation")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._reset("test")

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._reset("predict")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "validation")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "test")

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "predict")
