"""The retrieval recipe options (docs/design.md §5): the word-anchored separator and its token budget, "rarest"
order from the training texts' document frequency, training-only retrieval dropout and random exemplars
(reproducible, never in evaluation), known words that stop Chinese false hits, value checks and resume records.
SOKE's behaviour stays the default of every option."""

import json
import warnings

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from soke_lightning.callbacks.retrieval import (
    PROMPT_SETTINGS,
    RetrievalCallback,
    check_settings,
    load_lexicon,
    sample_generator,
    saved_frequency,
)
from soke_lightning.data.datamodule import SignItem, collate
from soke_lightning.retrieval.dictionary import DictionaryError, SignDictionary
from soke_lightning.retrieval.matcher import (
    KNOWN_WORDS,
    WordMatcher,
    approximate_token_count,
    build_prompt,
    content_coverage,
    document_frequency,
    drop_entries,
    get_matcher,
    retrieve,
    select,
    separator_texts,
    spell_entries,
)
from test_retrieval_callback import Recorder

PARTS = ("body", "lhand", "rhand")
SIZES = {"body": 8, "lhand": 8, "rhand": 8}
SENTENCE = "The teacher will eat an apple on the weekend."


def codes(n: int, v: int) -> np.ndarray:
    return np.stack([np.arange(n) % 8, np.full(n, v), np.full(n, 7 - v)], axis=1)


@pytest.fixture(scope="module")
def multi() -> SignDictionary:
    """asl words with 3 exemplars each (exemplar j has lhand code j), csl words for the matcher."""
    d = SignDictionary("abc", PARTS, SIZES)
    for w in ("teacher", "apple", "on the weekend"):
        for j in range(3):
            d.add("asl", w, codes(4, j))
    for w in ("什么", "车", "有", "学", "老师"):
        d.add("csl", w, codes(3, 5))
    return d


@pytest.fixture(scope="module")
def multi_path(multi, tmp_path_factory):
    return multi.save(tmp_path_factory.mktemp("recipe") / "dict.json")


def words(matches):
    return [m.word for m in matches]


def trainer(callback, max_epochs: int = 1) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   callbacks=[callback])


# ------------------------------------------------------------------------------------------------- separator
def test_word_separator_writes_the_word_and_the_budget_counts_it(multi):
    index, entries = build_prompt(SENTENCE, "asl", multi, max_codes_per_entry=2)
    word, same = build_prompt(SENTENCE, "asl", multi, max_codes_per_entry=2, separator="word")
    assert [e.word for e in same] == [e.word for e in entries] == ["on the weekend", "teacher", "apple"]
    assert " Key word 1, <body_" in index and "on the weekend:" not in index
    assert " Key word 1, on the weekend: <body_" in word and " Key word 2, teacher: <body_" in word
    assert " Key word 3, apple: <body_" in word
    assert word == index.replace(" Key word 1, ", " Key word 1, on the weekend: ").replace(
        " Key word 2, ", " Key word 2, teacher: ").replace(" Key word 3, ", " Key word 3, apple: ")
    # the budget counts the words: a budget that holds the index form whole drops the last entry of the word form
    n_index, n_word = approximate_token_count(index), approximate_token_count(word)
    assert n_word - n_index == sum(len(w) + 2 for w in ("on the weekend", "teacher", "apple"))
    def kept(budget, separator):
        return [e.word for e in build_prompt(SENTENCE, "asl", multi, max_codes_per_entry=2, max_tokens=budget,
                                             separator=separator)[1]]

    assert kept(n_index + 2, "index") == ["on the weekend", "teacher", "apple"]  # + </s> and the language code
    assert kept(n_index + 2, "word") == ["on the weekend"]  # 32 more characters: two entries must go
    assert kept(n_word + 2, "word") == ["on the weekend", "teacher", "apple"]
    assert kept(n_word + 1, "word") == ["on the weekend", "teacher"]
    zh, _ = build_prompt("什么", "csl", multi, max_codes_per_entry=1, separator="word")
    assert zh == "什么 关键词 1, 什么: <body_0><lhand_5><rhand_2>"
    with pytest.raises(ValueError, match="separator must be one of"):
        build_prompt(SENTENCE, "asl", multi, separator="name")
    assert " Key word 2, : " in separator_texts(3, "word") and " Key word 2, " in separator_texts(3)


# ----------------------------------------------------------------------------------------------------- rarest
def test_rarest_orders_by_training_frequency(multi):
    train = [("The teacher eats.", "asl"), ("A teacher, a teacher and an apple.", "asl"), ("Teacher!", "asl"),
             ("On the weekend we rest.", "asl"), ("苹果老师", "csl")]
    m = WordMatcher(multi)
    freq = document_frequency(train, m)
    assert freq == {"asl": {"teacher": 3, "apple": 1, "on the weekend": 1}, "csl": {"老师": 1}}  # once per text
    hits = m.match(SENTENCE, "asl")
    # ties (apple, on the weekend: 1 each) longest first; teacher (3) last
    assert words(select(hits, None, "rarest", freq)) == ["on the weekend", "apple", "teacher"]
    assert words(select(hits, 2, "rarest", {"asl": {"on the weekend": 9, "teacher": 2}})) == ["apple", "teacher"]
    assert words(select(hits, 2, "longest")) == ["on the weekend", "teacher"]  # SOKE's order unchanged
    with pytest.raises(ValueError, match="'rarest' needs a frequency table"):
        select(hits, 3, "rarest")
    prompt, kept = build_prompt(SENTENCE, "asl", multi, top_k=1, order="rarest", frequency={"asl": {"on the weekend":
                                                                                                     5, "apple": 5}})
    assert [e.word for e in kept] == ["teacher"] and "Key word 2" not in prompt


def test_rarest_in_the_callback_counts_the_datamodule_training_split(multi_path, tmp_path):
    from soke_lightning.data.datamodule import SignDataModule

    store = _store(tmp_path, train=["the teacher", "teacher and apple", "a teacher on the weekend",
                                    "teacher, apple"], test=[SENTENCE])
    dm = SignDataModule(stores=[str(store)], batch_size=2, eval_batch_size=2)
    module = Recorder()
    cb = RetrievalCallback(str(multi_path), order="rarest", top_k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(cb).test(module, datamodule=dm)  # evaluation orders entries as training did: the table is computed
    assert cb.frequency == {"asl": {"teacher": 4, "apple": 2, "on the weekend": 1}}
    # the checkpoint state keeps the table, so generation can order entries as training did without the data
    assert saved_frequency({"callbacks": {cb.state_key: cb.state_dict()}}) == cb.frequency
    assert saved_frequency({"callbacks": {}}) is None
    (prompt,) = module.seen["test"][0]["prompt"]
    dictionary = SignDictionary.load(multi_path)
    assert prompt == build_prompt(SENTENCE, "asl", dictionary, top_k=2, order="rarest", frequency=cb.frequency)[0]
    assert [e.word for e in build_prompt(SENTENCE, "asl", dictionary, top_k=2, order="rarest",
                                         frequency=cb.frequency)[1]] == ["on the weekend", "apple"]
    # without a SignDataModule the table cannot be made
    with pytest.raises(ValueError, match="order 'rarest' ranks words by their frequency"):
        trainer(RetrievalCallback(str(multi_path), order="rarest")).test(Recorder(), dataloaders=_loader())


def _store(root, train, test):
    from soke_lightning.core.layout import RAW_DIM
    from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
    from soke_lightning.data.store import Sample, StoreWriter, open_store

    rng = np.random.default_rng(0)
    writer = StoreWriter(root / "store", {"corpus": "test"})
    for split, texts in (("train", train), ("test", test)):
        with writer.split(split) as out:
            for i, text in enumerate(texts):
                out.add(Sample(f"{split}_{i}", text, "asl", "how2sign",
                               (0.1 * rng.standard_normal((44, RAW_DIM))).astype(np.float32), 25.0))
    mean, std, count = compute_stats(s.frames for s in open_store(root / "store").split("train"))
    save_stats(root / "store" / STATS_FILE, mean, std, count, "test store")
    return root / "store"


# ---------------------------------------------------------------------------------- dropout and exemplars
def _items(n: int = 4) -> list[SignItem]:
    g = torch.Generator().manual_seed(0)
    return [SignItem(torch.randn(8, 133, generator=g), f"s{i}", SENTENCE, "asl", "synthsign", 25.0)
            for i in range(n)]


def _loader(n: int = 4):
    return DataLoader(_items(n), batch_size=2, shuffle=False, collate_fn=collate)


def _ready(cb: RetrievalCallback) -> RetrievalCallback:
    """Set up (dictionary loaded, text tokenizer bound) through a test run."""
    trainer(cb).test(Recorder(), dataloaders=_loader(2))
    return cb


def test_drop_entries_rates_and_reproducibility(multi):
    entries = retrieve(SENTENCE, "asl", multi)
    kept = [len(drop_entries(entries, np.random.default_rng(s), 0.25, 0.0)) for s in range(2000)]
    assert abs(1 - np.mean(kept) / 3 - 0.25) < 0.03
    blocks = [drop_entries(entries, np.random.default_rng(s), 0.0, 0.3) == [] for s in range(2000)]
    assert abs(np.mean(blocks) - 0.3) < 0.03
    assert drop_entries(entries, np.random.default_rng(0), 0.0, 0.0) == entries
    # same generator state, same decisions; kept entries keep their order
    a, b = (drop_entries(entries, sample_generator(0, 7, "synthsign/s1", "dropout"), 0.5, 0.2) for _ in range(2))
    assert [id(e) for e in a] == [id(e) for e in b] == [id(e) for e in entries if any(e is x for x in a)]


def test_dropout_acts_only_in_training_at_the_expected_rate(multi_path):
    dictionary = SignDictionary.load(multi_path)
    full = build_prompt(SENTENCE, "asl", dictionary)[0]
    cb = RetrievalCallback(str(multi_path), entry_dropout=0.4, block_dropout=0.1, seed=3)
    module = Recorder()
    t = trainer(cb, max_epochs=2)
    t.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader())
    t.validate(module, dataloaders=_loader())
    t.test(module, dataloaders=_loader())
    for stage in ("validate", "test"):  # evaluation never drops
        assert {p for b in module.seen[stage] for p in b["prompt"]} == {full}, stage
    # training: exactly the per-sample draws of (seed, global step, sample key), so reproducible and rank-free
    train = [(p, step, key) for step, b in enumerate(module.seen["train"])
             for p, key in zip(b["prompt"], [f"synthsign/{n}" for n in b["name"]])]
    assert [p for p, _, _ in train] == [cb.training_prompt(SENTENCE, "asl", key, step) for _, step, key in train]
    assert any(p != full for p, _, _ in train)
    # the rate over many steps: entries kept (1 - 0.1) * (1 - 0.4) * 3 per prompt on average, blocks dropped 10 %
    prompts = [cb.training_prompt(SENTENCE, "asl", f"synthsign/s{k}", step) for step in range(300) for k in range(4)]
    assert abs(np.mean([p.count("Key word") for p in prompts]) - 0.9 * 0.6 * 3) < 0.12
    assert abs(np.mean([p == SENTENCE for p in prompts]) - (0.1 + 0.9 * 0.4 ** 3)) < 0.04
    # another instance with the same seed draws the same; another seed or step draws differently
    again = _ready(RetrievalCallback(str(multi_path), entry_dropout=0.4, block_dropout=0.1, seed=3))
    other = _ready(RetrievalCallback(str(multi_path), entry_dropout=0.4, block_dropout=0.1, seed=4))
    keys = [(f"synthsign/s{k}", step) for step in range(20) for k in range(4)]
    assert [again.training_prompt(SENTENCE, "asl", k, s) for k, s in keys] == prompts[:80]
    assert [other.training_prompt(SENTENCE, "asl", k, s) for k, s in keys] != prompts[:80]
    assert cb.prompt(SENTENCE, "asl") == full
    # dropout off (SOKE): training prompts are the evaluation prompts
    plain = _ready(RetrievalCallback(str(multi_path)))
    assert not plain.random_in_training and plain.training_prompt(SENTENCE, "asl", "synthsign/s0", 5) == full


def test_random_exemplar_changes_across_training_steps_but_not_in_evaluation(multi, multi_path):
    first = [e.codes[0, 1] for e in retrieve(SENTENCE, "asl", multi)]
    assert first == [0, 0, 0]  # exemplar 0 has lhand code 0
    drawn = [[int(e.codes[0, 1]) for e in spell_entries(select(WordMatcher(multi).match(SENTENCE, "asl"), 3),
                                                            multi, 10, np.random.default_rng(s))] for s in range(60)]
    assert {x for row in drawn for x in row} == {0, 1, 2}
    cb = RetrievalCallback(str(multi_path), exemplar="random_train", seed=0)
    module = Recorder()
    t = trainer(cb, max_epochs=3)
    t.fit(module, train_dataloaders=_loader(2), val_dataloaders=_loader(2))
    t.test(module, dataloaders=_loader(2))
    full = build_prompt(SENTENCE, "asl", multi)[0]
    assert {p for stage in ("validate", "test") for b in module.seen[stage] for p in b["prompt"]} == {full}
    train = [b["prompt"][0] for b in module.seen["train"]]  # sample s0 at steps 0, 1, 2
    assert train == [cb.training_prompt(SENTENCE, "asl", "synthsign/s0", s) for s in range(3)]
    steps = {cb.training_prompt(SENTENCE, "asl", "synthsign/s0", s) for s in range(20)}
    assert len(steps) > 5 and all(p.count("Key word") == 3 for p in steps)  # exemplars change, entries do not
    assert cb.training_prompt(SENTENCE, "asl", "synthsign/s0", 7) == cb.training_prompt(SENTENCE, "asl",
                                                                                        "synthsign/s0", 7)


# ----------------------------------------------------------------------------------------- Chinese false hits
def test_chinese_known_words_block_false_hits(multi):
    d = SignDictionary("abc", PARTS, SIZES)
    for w in ("什么", "为什么", "车", "老师"):
        d.add("csl", w, codes(3, 1))
    # both in the dictionary: the longest match wins, 什么 is not hit inside 为什么 (already so without the option)
    assert words(WordMatcher(d).match("你为什么哭", "csl")) == ["为什么"]
    assert words(WordMatcher(d).match("这是什么", "csl")) == ["什么"]
    # 什么 without 为什么: today's behaviour ("none", the default) hits it; the built-in known words block it
    plain, known = WordMatcher(multi), WordMatcher(multi, known_words="builtin")
    assert words(plain.match("你为什么哭", "csl")) == ["什么"]
    assert words(known.match("你为什么哭", "csl")) == []
    assert words(known.match("这是什么", "csl")) == ["什么"]
    # 车 (car) is not hit inside 开车 (to drive), but is hit on its own
    assert words(plain.match("他开车去学校", "csl")) == ["车", "学"]
    assert words(known.match("他开车去学校", "csl")) == ["学"]
    assert words(known.match("老师的车很新", "csl")) == ["老师", "车"]
    # 有 inside 没有 / 有些 is blocked; existential 有 at the start is not (documented)
    assert words(known.match("我没有钱，有些人有车", "csl")) == ["有", "车"]
    assert [("有" in KNOWN_WORDS["zh"]), ("为什么" in KNOWN_WORDS["zh"]), ("开车" in KNOWN_WORDS["zh"])] == [
        False, True, True]
    # a dictionary entry wins over a known word of the same length: 开车 in the dictionary is retrieved
    d.add("csl", "开车", codes(3, 2))
    assert words(WordMatcher(d, known_words="builtin").match("他开车", "csl")) == ["开车"]
    # a lexicon adds known words per language (学校 blocks 学)
    lex = WordMatcher(multi, known_words="builtin", lexicon={"csl": ["学校"]})
    assert lex.blocking_words("csl")[-1] == "学校" and words(lex.match("他开车去学校", "csl")) == []
    # prompts and coverage: a known word is a segment of its own (为什么 is one uncovered content word)
    assert build_prompt("你为什么哭", "csl", multi, known_words="builtin")[0] == "你为什么哭"
    assert content_coverage("你为什么哭", "csl", known) == (3, 0)
    assert content_coverage("你为什么哭", "csl", plain) == (4, 1)
    # English is untouched by the built-in list; SOKE's substring matcher has no segmentation to block
    assert words(known.match("the teacher", "asl")) == ["teacher"]
    with pytest.raises(ValueError, match="needs the 'words' matcher"):
        get_matcher("soke_substring", multi, known_words="builtin")
    with pytest.raises(KeyError, match="unknown language keys"):
        WordMatcher(multi, lexicon={"zh": ["为什么"]})


def test_known_words_through_the_callback(multi_path, tmp_path):
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps({"csl": ["学校"]}, ensure_ascii=False), encoding="utf-8")
    cb = _ready(RetrievalCallback(str(multi_path), known_words="builtin", lexicon=str(lexicon)))
    assert cb.prompt("他开车去学校", "csl") == "他开车去学校"
    assert _ready(RetrievalCallback(str(multi_path))).prompt("他开车去学校", "csl").count("关键词") == 2
    assert cb.settings()["known_words"] == "builtin" and cb.settings()["lexicon"].startswith("sha256:")
    assert cb.settings()["lexicon"] == RetrievalCallback(str(multi_path), lexicon={"csl": ["学校"]}).settings()[
        "lexicon"]  # the file and the same mapping are the same lexicon
    with pytest.raises(DictionaryError, match="does not exist"):
        load_lexicon(tmp_path / "missing.json")
    with pytest.raises(DictionaryError, match="unknown language keys"):
        load_lexicon({"zh": ["为什么"]})


# ----------------------------------------------------------------------------------- checks and resume state
def test_values_are_checked_with_the_fix(multi_path):
    for bad, match in [({"entry_dropout": 1.5}, r"entry_dropout=1.5 must be a probability"),
                       ({"block_dropout": True}, "block_dropout=True"),
                       ({"separator": "name"}, r"separator='name' is not one of \['index', 'word'\]"),
                       ({"exemplar": "random"}, "exemplar='random'"),
                       ({"order": "frequent"}, "'rarest'"),
                       ({"seed": -1}, "seed=-1 must be a non-negative integer"),
                       ({"known_words": "builtin", "matcher": "soke_substring"}, "needs matcher 'words'"),
                       ({"lexicon": 3}, "must be a JSON file path or a mapping")]:
        with pytest.raises(ValueError, match=match):
            check_settings(bad)
        with pytest.raises(ValueError, match=match) as err:
            RetrievalCallback(str(multi_path), **bad)
        assert str(err.value).startswith("RetrievalCallback: retrieval setting ")
    check_settings({"entry_dropout": 1, "block_dropout": 0.0, "seed": 0, "order": "rarest", "separator": "word",
                    "exemplar": "random_train", "known_words": "builtin", "lexicon": {"csl": ["学校"]}})


def test_new_settings_are_recorded_only_when_not_soke_and_resume_is_checked(multi_path):
    default = RetrievalCallback(str(multi_path))
    assert default.settings() == {"top_k": 3, "max_codes_per_entry": 10, "order": "longest", "matcher": "words",
                                  "max_prompt_tokens": None}
    recipe = RetrievalCallback(str(multi_path), separator="word", entry_dropout=0.2, block_dropout=0.1,
                               exemplar="random_train", seed=5, known_words="builtin", order="text")
    assert recipe.settings() == {**default.settings(), "order": "text", "separator": "word", "entry_dropout": 0.2,
                                 "block_dropout": 0.1, "exemplar": "random_train", "seed": 5,
                                 "known_words": "builtin"}
    assert set(recipe.settings()) <= set(PROMPT_SETTINGS)
    # a checkpoint of a default run evaluated with the recipe: the differences are named (a fit would refuse)
    _ready(default)
    state = default.state_dict()
    _ready(recipe)
    with pytest.warns(UserWarning, match="separator 'index' != 'word'.*exemplar 'first' != 'random_train'"):
        recipe.load_state_dict(state)


def test_lm_stage_checks_and_threads_the_new_settings(multi_path):
    from soke_lightning.training.lm_stage import LMStage

    with pytest.raises(ValueError, match=r"LMStage: retrieval_settings: .*entry_dropout=2"):
        LMStage(tokenizer_ckpt="x.ckpt", mbart={"d_model": 16}, retrieval=True,
                retrieval_settings={"entry_dropout": 2})
    settings = {"dictionary": str(multi_path), "separator": "word", "entry_dropout": 0.1, "block_dropout": 0.05,
                "exemplar": "random_train", "seed": 1, "known_words": "builtin", "order": "rarest"}
    stage = LMStage(tokenizer_ckpt="x.ckpt", mbart={"d_model": 16}, retrieval=True, retrieval_settings=settings)
    stage.trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
    (cb,) = stage.configure_callbacks()
    assert (cb.separator, cb.entry_dropout, cb.block_dropout, cb.exemplar, cb.seed, cb.known_words, cb.order) == (
        "word", 0.1, 0.05, "random_train", 1, "builtin", "rarest")


# ------------------------------------------------------------------------------------------ the oracle diagnostic
def _oracle_store(root):
    from soke_lightning.core.layout import RAW_DIM
    from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
    from soke_lightning.data.store import Sample, StoreWriter, open_store

    frames = (0.1 * np.random.default_rng(0).standard_normal((44, RAW_DIM))).astype(np.float32)
    writer = StoreWriter(root / "store", {"corpus": "test"})
    with writer.split("train") as out:  # teacher signed in frames 0..19, apple in 20..43
        out.add(Sample("t0", "the teacher and the apple", "asl", "how2sign", frames, 25.0,
                       {"concepts": ["TEACHER", "APPLE"], "spans": [[0, 20], [20, 44]]}))
    with writer.split("dictionary") as out:
        for word in ("teacher", "apple", "on the weekend"):
            out.add(Sample(f"d_{word}", word, "asl", "how2sign", frames[:40], 25.0, {"concept": word.upper()}))
    mean, std, count = compute_stats(s.frames for s in open_store(root / "store").split("train"))
    save_stats(root / "store" / STATS_FILE, mean, std, count, "test store")
    return root / "store"


def test_oracle_exemplar_puts_the_sentences_own_span_codes_into_every_stage(multi, multi_path, tmp_path):
    from types import SimpleNamespace

    from soke_lightning.data.datamodule import SignDataModule
    from soke_lightning.models.text_tokenizer import motion_string

    dm = SignDataModule(stores=[str(_oracle_store(tmp_path))])
    own = torch.tensor([[k % 8, (k + 3) % 8, (k + 5) % 8] for k in range(11)])  # 44 frames = 11 code steps
    text = "the teacher and the apple"

    def batch(names, texts):
        items = [SignItem(torch.zeros(44, 133), n, t, "asl", "how2sign", 25.0, codes=own) for n, t in zip(names, texts)]
        return collate(items)

    cb = RetrievalCallback(str(multi_path), exemplar="oracle", separator="word").attach(Recorder(), dm)
    for hook in (cb.on_train_batch_start, cb.on_test_batch_start):
        b = batch(["t0", "unknown"], [text, text])
        hook(SimpleNamespace(global_step=0), Recorder(), b, 0)
        oracle, fallback = b.prompt
        # teacher: frames 0..19 -> steps 0..4; apple: frames 20..43 -> steps 5..10
        assert f"teacher: {motion_string(own[0:5], PARTS)}" in oracle
        assert f"apple: {motion_string(own[5:11], PARTS)}" in oracle
        # a sample whose spans are unknown gets the dictionary's entries
        assert fallback == build_prompt(text, "asl", multi, separator="word")[0]
    # a retrieved word whose concept the sentence does not sign keeps its dictionary codes
    b = batch(["t0"], ["the teacher on the weekend"])
    cb.on_train_batch_start(SimpleNamespace(global_step=0), Recorder(), b, 0)
    assert f"on the weekend: {motion_string(multi.exemplars('asl', 'on the weekend')[0], PARTS)}" in b.prompt[0]
    assert f"teacher: {motion_string(own[0:5], PARTS)}" in b.prompt[0]
    # batches without target codes cannot have an oracle
    b = collate([SignItem(torch.zeros(44, 133), "t0", text, "asl", "how2sign", 25.0)])
    with pytest.raises(ValueError, match="exemplar 'oracle' needs the batches' target codes"):
        cb.on_train_batch_start(SimpleNamespace(global_step=0), Recorder(), b, 0)
    # a corpus without spans is refused when the callback is set up
    plain = SignDataModule(stores=[str(_store(tmp_path / "plain", train=[text], test=[text]))])
    with pytest.raises(ValueError, match="exemplar 'oracle' needs sentences with meta 'concepts' / 'spans'"):
        RetrievalCallback(str(multi_path), exemplar="oracle").attach(Recorder(), plain)
