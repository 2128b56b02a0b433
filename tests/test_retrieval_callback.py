"""RetrievalCallback: the prompts a model sees in fit / validate / test / predict, nothing else in the batch changed,
tokenizer mismatch refused, token budget, coverage logged per language, dictionary built once when missing, the
inflection setting (prompts, resume of checkpoints written before it existed)."""

import warnings

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

from soke_lightning.callbacks.retrieval import RetrievalCallback, RetrievalResumeError
from soke_lightning.data.datamodule import SignItem, collate
from soke_lightning.retrieval.dictionary import DictionaryMismatchError, SignDictionary
from soke_lightning.retrieval.matcher import build_prompt

SENTENCES = [
    ("asl", "The teacher will eat an apple on the weekend."),
    ("asl", "Nothing matches here."),
    ("csl", "老师吃了两个苹果。"),
    ("dgs", "Heute Abend wird der Lehrer essen."),
]


@pytest.fixture(scope="module")
def dict_path(tmp_path_factory):
    d = SignDictionary("abc", ("body", "lhand", "rhand"), {"body": 8, "lhand": 8, "rhand": 8})
    rng = np.random.default_rng(0)
    for lang, words in {"asl": ["teacher", "apple", "on the weekend", "take off"], "csl": ["老师", "苹果"],
                        "dgs": ["heute abend", "lehrer"]}.items():
        for w in words:
            d.add(lang, w, rng.integers(0, 8, (4, 3)))
    return d.save(tmp_path_factory.mktemp("dict") / "dict.json")


def items() -> list[SignItem]:
    g = torch.Generator().manual_seed(0)
    return [SignItem(torch.randn(8 + 4 * i, 133, generator=g), f"s{i}", text, lang, "synthsign", 25.0)
            for i, (lang, text) in enumerate(SENTENCES)]


def loader():
    return DataLoader(items(), batch_size=2, shuffle=False, collate_fn=collate)


class Recorder(LightningModule):
    """Records what every step receives."""

    def __init__(self, digest: str = "abc"):
        super().__init__()
        self.tokenizer_digest = digest
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[str, list] = {}

    def _record(self, stage, batch):
        self.seen.setdefault(stage, []).append(
            {"prompt": None if batch.prompt is None else list(batch.prompt), "text": list(batch.text),
             "lang": list(batch.lang), "name": list(batch.name), "corpus": list(batch.corpus),
             "poses": batch.poses.clone(), "lengths": batch.lengths.clone(), "mask": batch.mask.clone(),
             "codes": batch.codes, "extra": dict(batch.extra)})

    def training_step(self, batch, batch_idx):
        self._record("train", batch)
        return self.layer(batch.poses[..., :1]).mean()

    def validation_step(self, batch, batch_idx):
        self._record("validate", batch)

    def test_step(self, batch, batch_idx):
        self._record("test", batch)

    def predict_step(self, batch, batch_idx):
        self._record("predict", batch)
        return len(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def trainer(callback, **kw):
    return Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   callbacks=[callback], **kw)


def test_prompts_in_every_stage_and_nothing_else_changes(dict_path):
    dictionary = SignDictionary.load(dict_path)
    expected = [build_prompt(text, lang, dictionary)[0] for lang, text in SENTENCES]
    assert [e == t for e, (_, t) in zip(expected, SENTENCES)] == [False, True, False, False]  # sentence 2: no hit
    cb = RetrievalCallback(str(dict_path))
    module = Recorder()
    t = trainer(cb)
    t.fit(module, train_dataloaders=loader(), val_dataloaders=loader())
    t.validate(module, dataloaders=loader())
    t.test(module, dataloaders=loader())
    t.predict(module, dataloaders=loader())
    originals = [collate(items()[i:i + 2]) for i in (0, 2)]
    for stage in ("train", "validate", "test", "predict"):
        batches = module.seen[stage]
        if stage == "validate":  # fit's validation pass + trainer.validate
            batches = batches[-2:]
        assert [p for b in batches for p in b["prompt"]] == expected, stage
        for got, ref in zip(batches, originals):
            assert got["text"] == ref.text and got["lang"] == ref.lang and got["name"] == ref.name
            assert got["corpus"] == ref.corpus and got["codes"] is None and got["extra"] == ref.extra
            assert torch.equal(got["poses"], ref.poses) and torch.equal(got["lengths"], ref.lengths)
            assert torch.equal(got["mask"], ref.mask)
    assert "Key word 1, <body_" in expected[0] and " 关键词 2, <body_" in expected[2]
    assert " Schlüsselwort 2, <body_" in expected[3]


def test_coverage_is_logged_per_language(dict_path):
    cb = RetrievalCallback(str(dict_path))
    t = trainer(cb)
    t.test(Recorder(), dataloaders=loader())
    cov = cb.coverage["test"]
    # asl: hits in 1 of 2 sentences; content teacher eat apple weekend | nothing matches -> 3 of 6 covered
    assert cov["asl"] == {"sentences": 2.0, "sentence_hit_rate": 0.5, "content_word_coverage": 0.5,
                          "entries_per_sentence": 1.5, "truncated_share": 0.0}
    # csl: 老师 吃 两 苹果 -> 2 of 4; dgs: heute abend lehrer essen -> 3 of 4
    assert cov["csl"]["content_word_coverage"] == 0.5 and cov["csl"]["entries_per_sentence"] == 2.0
    assert cov["dgs"]["content_word_coverage"] == 0.75 and cov["dgs"]["sentence_hit_rate"] == 1.0
    metrics = t.callback_metrics
    assert float(metrics["test/retrieval/asl/sentence_hit_rate"]) == 0.5
    assert float(metrics["test/retrieval/dgs/content_word_coverage"]) == 0.75


def test_token_budget_truncates_with_a_warning(dict_path):
    # asl sentence 1: 46 chars + 2 reserved + 3 x (" Key word i, " 13 + 12 motion tokens): only 2 entries fit 100
    cb = RetrievalCallback(str(dict_path), max_prompt_tokens=100)
    module = Recorder()
    with pytest.warns(UserWarning, match="exceeds the budget of 100 tokens; 1 of 3"):
        trainer(cb).test(module, dataloaders=loader())
    first = module.seen["test"][0]["prompt"][0]
    assert "Key word 2, " in first and "Key word 3" not in first
    assert cb.coverage["test"]["asl"]["truncated_share"] == 0.5


def test_disabled_callback_leaves_prompts_unset(dict_path):
    module = Recorder()
    trainer(RetrievalCallback(str(dict_path), enabled=False)).test(module, dataloaders=loader())
    assert all(b["prompt"] is None for b in module.seen["test"])


def test_dictionary_of_another_tokenizer_is_refused(dict_path):
    with pytest.raises(DictionaryMismatchError, match="abc != other"):
        trainer(RetrievalCallback(str(dict_path))).test(Recorder(digest="other"), dataloaders=loader())


def test_text_order_and_soke_substring_options(dict_path):
    cb = RetrievalCallback(str(dict_path), order="text", matcher="soke_substring", top_k=2, max_codes_per_entry=1)
    module = Recorder()
    trainer(cb).predict(module, dataloaders=loader())
    prompt = module.seen["predict"][0]["prompt"][0]
    assert prompt.count("<body_") == 2  # 2 entries of 1 code step
    dictionary = SignDictionary.load(dict_path)
    assert prompt == build_prompt(SENTENCES[0][1], "asl", dictionary, order="text", matcher="soke_substring",
                                  top_k=2, max_codes_per_entry=1)[0]


def test_inflection_setting_shapes_prompts_and_resumes(dict_path, tmp_path):
    plain, suffix = RetrievalCallback(str(dict_path)), RetrievalCallback(str(dict_path), inflection="suffix")
    for cb in (plain, suffix):
        trainer(cb).test(Recorder(), dataloaders=loader())
    assert plain.prompt("Two apples, teachers!", "asl") == "Two apples, teachers!"
    dictionary = SignDictionary.load(dict_path)
    assert suffix.prompt("Two apples, teachers!", "asl") == build_prompt("Two apples, teachers!", "asl", dictionary,
                                                                          inflection="suffix")[0]
    assert suffix.prompt("Two apples, teachers!", "asl").count("Key word") == 2
    # recorded only when not the default, so default runs write the checkpoint state they wrote before the option
    assert suffix.settings()["inflection"] == "suffix" and "inflection" not in plain.settings()
    with pytest.raises(ValueError, match="needs matcher 'words'"):
        RetrievalCallback(str(dict_path), matcher="soke_substring", inflection="suffix")
    # resume: a checkpoint of a run before this option existed (no "inflection" in its settings) means "none"
    fit = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                  callbacks=[RetrievalCallback(str(dict_path))], default_root_dir=tmp_path)
    fit.fit(Recorder(), train_dataloaders=loader())
    ckpt = torch.load(_save(fit, tmp_path / "old.ckpt"), weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("RetrievalCallback")]
    assert state["settings"] == {"top_k": 3, "max_codes_per_entry": 10, "order": "longest", "matcher": "words",
                                 "max_prompt_tokens": None}

    def resume(cb):
        t = Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=[cb],
                    default_root_dir=tmp_path)
        t.fit(Recorder(), train_dataloaders=loader(), ckpt_path=tmp_path / "old.ckpt")

    resume(RetrievalCallback(str(dict_path)))
    with pytest.raises(RetrievalResumeError, match="inflection 'none' != 'suffix'"):
        resume(RetrievalCallback(str(dict_path), inflection="suffix"))


def _save(t: Trainer, path):
    t.save_checkpoint(path)
    return path


def test_missing_dictionary_is_built_once_from_the_datamodule(tmp_path):
    from soke_lightning.data.datamodule import SignDataModule
    from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
    from test_retrieval_dictionary import TINY

    store = _word_store(tmp_path)
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY)
    tok.train()(torch.randn(4, 40, 133))
    ckpt = tmp_path / "tok.ckpt"
    tok.save_checkpoint(ckpt)
    out = tmp_path / "built" / "dict.json"
    cb = RetrievalCallback(str(out), tokenizer=str(ckpt))
    module = Recorder(digest=tokenizer_hash(ckpt))
    dm = SignDataModule(stores=[str(store)], val_split="dictionary", batch_size=2, eval_batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(cb).validate(module, datamodule=dm)
    built = SignDictionary.load(out, expected_hash=tokenizer_hash(ckpt))
    assert built.words("asl") == ["apple", "take off"]
    prompts = [p for b in module.seen["validate"] for p in b["prompt"]]
    assert any(p.startswith("apple Key word 1, <body_") for p in prompts)


def _word_store(root):
    from soke_lightning.core.layout import RAW_DIM
    from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
    from soke_lightning.data.store import Sample, StoreWriter, open_store
    from test_retrieval_dictionary import WORDS

    rng = np.random.default_rng(1)
    corpus = {"asl": "how2sign", "csl": "csl_daily", "dgs": "phoenix14t"}
    writer = StoreWriter(root / "store", {"corpus": "test"})
    for split in ("train", "dictionary"):
        with writer.split(split) as out:
            for lang, words in WORDS.items():
                for i, w in enumerate(words):
                    frames = (0.1 * rng.standard_normal((44, RAW_DIM))).astype(np.float32)
                    out.add(Sample(f"{lang}_{split}_{i}", w, lang, corpus[lang], frames, 25.0))
    mean, std, count = compute_stats(s.frames for s in open_store(root / "store").split("train"))
    save_stats(root / "store" / STATS_FILE, mean, std, count, "test store")
    return root / "store"
