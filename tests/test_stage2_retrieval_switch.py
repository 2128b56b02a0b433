"""Retrieval as one LMStage switch (``model.init_args.retrieval``): it changes the prompts the model encodes in fit
and test; an explicit RetrievalCallback as well is refused; the dictionary is part of what resumes (same content
accepted, changed content / settings / on-off refused, a deleted dictionary rebuilt identically); the token cache
is checked against the tokenizer when resuming. Tiny SynthSign pipeline of tests/test_stage2_lm.py, CPU."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

from soke_lightning.callbacks.retrieval import RetrievalCallback, RetrievalResumeError, dictionary_digest
from soke_lightning.retrieval.dictionary import SignDictionary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from test_stage2_lm import pipeline

    return pipeline(tmp_path_factory)


def _cli(run, out: Path, *extra: str):
    """A stage-2 debug CLI (not run): 1 epoch of at most 2 batches, no validation, no checkpoint callbacks."""
    from soke_lightning.cli.lightning import SokeCLI

    args = ["--config", str(ROOT / "experiments/stage2/debug.yaml"), "--data", str(ROOT / "datamodules/synthsign.yaml"),
            f"--data.init_args.stores=[{run['store']}]", "--data.init_args.batch_size=8",
            "--data.init_args.eval_batch_size=18", f"--data.init_args.token_cache={run['cache']}",
            f"--model.init_args.tokenizer_ckpt={run['stage1']}", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0", f"--trainer.default_root_dir={out}",
            "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false", *extra]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["soke"])
        return SokeCLI(args=args, run=False)


def _record_prompts(model) -> list[tuple[str, str]]:
    """Every (prompt, language) the model encodes from now on."""
    seen: list[tuple[str, str]] = []
    encode = model.encode_prompts

    def recording(texts, langs):
        seen.extend(zip(texts, langs))
        return encode(texts, langs)

    model.encode_prompts = recording
    return seen


def _switch(dictionary: Path, *more: str) -> list[str]:
    return ["--model.init_args.retrieval=True", f"--model.init_args.retrieval_settings={{dictionary: {dictionary}}}",
            *more]


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def test_the_switch_changes_the_prompts_in_fit_and_test(run, tmp_path):
    texts = {}
    for name in ("off", "on"):
        flags = _switch(tmp_path / "dict.json") if name == "on" else ["--model.init_args.retrieval=False"]
        cli = _cli(run, tmp_path / name, *flags)
        seen = _record_prompts(cli.model)
        _quiet(cli.trainer.fit, cli.model, cli.datamodule)
        fit_prompts = list(seen)
        seen.clear()
        _quiet(cli.trainer.test, cli.model, cli.datamodule, verbose=False)
        texts[name] = (fit_prompts, list(seen), cli)
    off_fit, off_test, off_cli = texts["off"]
    on_fit, on_test, on_cli = texts["on"]
    assert not any(isinstance(c, RetrievalCallback) for c in off_cli.trainer.callbacks)
    callbacks = [c for c in on_cli.trainer.callbacks if isinstance(c, RetrievalCallback)]
    assert len(callbacks) == 1 and callbacks[0].dictionary_path == tmp_path / "dict.json"
    assert (tmp_path / "dict.json").is_file()  # built on first use from the store's dictionary split
    # off: the sentences themselves; on: the sentence + the callback's retrieval string, in training and test
    sentences = {t for b in (off_fit, off_test) for t, _ in b}
    assert sentences and all(" Key word " not in t and "<body_" not in t for t in sentences)
    cb = callbacks[0]
    # sample by sample (same seed, same order): the switch-on run encodes exactly the callback's prompt of each
    # sentence the switch-off run encoded, in training and in test
    for on, off in ((on_fit, off_fit), (on_test, off_test)):
        assert [lang for _, lang in on] == [lang for _, lang in off]
        assert [p for p, _ in on] == [cb.prompt(t, lang) for t, lang in off]
        injected = [p for p, _ in on if " Key word " in p or "<body_" in p]
        assert len(injected) >= len(on) // 2, on[:4]
    assert "test/retrieval/asl/sentence_hit_rate" in on_cli.trainer.callback_metrics


def test_switch_and_explicit_callback_together_are_refused(run, tmp_path):
    cli = _cli(run, tmp_path, *_switch(tmp_path / "dict.json"))
    cli.trainer.callbacks.append(RetrievalCallback(str(tmp_path / "other.json")))
    with pytest.raises(ValueError, match="configure one of"):
        _quiet(cli.trainer.fit, cli.model, cli.datamodule)


def test_unknown_retrieval_setting_names_the_valid_keys():
    from soke_lightning.training.lm_stage import LMStage

    with pytest.raises(ValueError, match=r"unknown keys \['topk'\].*'top_k'"):
        LMStage(tokenizer_ckpt="x.ckpt", mbart={"d_model": 16}, retrieval=True, retrieval_settings={"topk": 2})


def test_the_default_dictionary_lives_in_the_token_cache(run, tmp_path):
    cli = _cli(run, tmp_path, "--model.init_args.retrieval=True")
    cli.trainer.datamodule = cli.datamodule  # what fit() attaches before configure_callbacks
    cli.model.trainer = cli.trainer
    (cb,) = cli.model.configure_callbacks()
    assert cb.dictionary_path == Path(run["cache"]) / "dictionary.json"
    assert cb.tokenizer == str(run["stage1"]) and cb.top_k == 3 and cb.max_codes_per_entry == 10


# ------------------------------------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def interrupted(run, tmp_path_factory):
    """A 1-epoch retrieval-on fit and its checkpoint (dictionary in its own folder)."""
    root = tmp_path_factory.mktemp("retrieval_resume")
    dictionary = root / "dict.json"
    cli = _cli(run, root / "first", *_switch(dictionary))
    _quiet(cli.trainer.fit, cli.model, cli.datamodule)
    ckpt = root / "first.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    return ckpt, dictionary


def _resume(run, out, ckpt, *flags):
    cli = _cli(run, out, "--trainer.max_epochs=2", *flags)
    _quiet(cli.trainer.fit, cli.model, cli.datamodule, ckpt_path=str(ckpt))
    return cli


def test_checkpoint_records_the_dictionary(interrupted):
    ckpt, dictionary = interrupted
    state = torch.load(ckpt, weights_only=False)["callbacks"]["RetrievalCallback"]
    loaded = SignDictionary.load(dictionary)
    assert state["enabled"] and state["dictionary"] == str(dictionary.resolve())
    assert state["digest"] == dictionary_digest(loaded) and state["tokenizer_hash"] == loaded.tokenizer_hash
    assert state["settings"] == {"top_k": 3, "max_codes_per_entry": 10, "order": "longest", "matcher": "words",
                                 "max_prompt_tokens": None}


def test_resume_with_the_same_dictionary_moved_or_rebuilt(run, interrupted, tmp_path):
    ckpt, dictionary = interrupted
    moved = tmp_path / "moved.json"
    shutil.copy(dictionary, moved)
    cli = _resume(run, tmp_path / "moved", ckpt, *_switch(moved))
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4
    # deleted: rebuilt from the same data and tokenizer -> the same digest, accepted
    rebuilt = tmp_path / "rebuilt.json"
    cli = _resume(run, tmp_path / "rebuilt", ckpt, *_switch(rebuilt))
    assert rebuilt.is_file() and cli.trainer.global_step == 4


def test_resume_with_another_dictionary_or_settings_is_refused(run, interrupted, tmp_path):
    ckpt, dictionary = interrupted
    data = json.loads(dictionary.read_text())
    lang = next(iter(data["entries"]))
    data["entries"][lang].pop(next(iter(data["entries"][lang])))
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    with pytest.raises(RetrievalResumeError, match="content digest") as err:
        _resume(run, tmp_path / "a", ckpt, *_switch(changed))
    assert str(changed) in str(err.value) and str(dictionary.resolve()) in str(err.value)
    with pytest.raises(RetrievalResumeError, match="top_k 3 != 2"):
        _resume(run, tmp_path / "b", ckpt, "--model.init_args.retrieval=True",
                f"--model.init_args.retrieval_settings={{dictionary: {dictionary}, top_k: 2}}")
    from soke_lightning.training.lm_stage import ContractError

    with pytest.raises(ContractError, match="retrieval on but this run has it off"):
        _resume(run, tmp_path / "c", ckpt, "--model.init_args.retrieval=False")
    # evaluation with another dictionary is allowed (a warning), not refused
    cli = _cli(run, tmp_path / "d", *_switch(changed))
    with pytest.warns(UserWarning, match="content digest"):
        cli.trainer.test(cli.model, cli.datamodule, ckpt_path=str(ckpt), verbose=False)


def test_resume_with_a_token_cache_of_another_tokenizer_is_refused(run, interrupted, tmp_path):
    from soke_lightning.data.token_cache import TokenCacheError

    ckpt, dictionary = interrupted
    cache = tmp_path / "cache"
    shutil.copytree(run["cache"], cache)
    meta = next(p for p in cache.rglob("*.json") if "tokenizer_hash" in p.read_text())
    data = json.loads(meta.read_text())
    data["tokenizer_hash"] = "0" * 64
    meta.write_text(json.dumps(data))
    with pytest.raises(TokenCacheError, match="0" * 64):
        _resume(run, tmp_path / "e", ckpt, *_switch(dictionary), f"--data.init_args.token_cache={cache}")
