"""Sign dictionaries: file round trip, tokenizer binding and refusal, official word2code.json import, building with
a tokenizer from an isolated-sign split (`soke dict build`), and the match / info tools."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from soke_lightning.cli import dict as cli
from soke_lightning.retrieval.dictionary import (
    OFFICIAL_IMPORT_HASH,
    DictionaryError,
    DictionaryMismatchError,
    SignDictionary,
    add_form_aliases,
    import_word2code,
)

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("body", "lhand", "rhand")
TINY = dict(width=16, code_dim=8, depth=1, codebook_sizes={"body": 8, "lhand": 16, "rhand": 16})
WORDS = {"asl": ["apple", "take off", "apple"], "csl": ["苹果", "老师", "吃"], "dgs": ["Apfel", "heute Abend", "essen"]}
#: Surface forms recorded in the dictionary samples' meta, as SynthSign does (csl: none, like an older store).
FORMS = {("asl", 0): ["apples"], ("asl", 1): ["takes off", "took off"], ("asl", 2): ["apples", "Apple's"],
         ("dgs", 0): ["Äpfel"], ("dgs", 2): ["isst", "gegessen"]}
SENTENCES = {"asl": "The apple is red.", "csl": "老师吃了苹果。", "dgs": "Heute Abend ist der Apfel rot."}


def small() -> SignDictionary:
    d = SignDictionary("abc123", PARTS, {"body": 8, "lhand": 16, "rhand": 16})
    d.add("asl", "Take  Off", np.array([[1, 2, 3], [4, 5, 6]]))
    d.add("asl", "take off", {"body": [7], "lhand": [15], "rhand": [0]})
    d.add("csl", "老师", np.zeros((3, 3), np.int64))
    return d


def test_save_load_round_trip_and_summary(tmp_path):
    d = small()
    path = d.save(tmp_path / "sub" / "dict.json")
    assert [p.name for p in path.parent.iterdir()] == ["dict.json"]  # atomic: no temporary file left
    back = SignDictionary.load(path, expected_hash="abc123")
    assert back.languages == ("asl", "csl") and back.words("asl") == ["take off"] and len(back) == 2
    np.testing.assert_array_equal(back.exemplars("asl", "TAKE OFF")[1], [[7, 15, 0]])
    np.testing.assert_array_equal(back.exemplars("asl", "take off")[0], [[1, 2, 3], [4, 5, 6]])
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["entries"]["asl"]["take off"][0] == {"body": [1, 4], "lhand": [2, 5], "rhand": [3, 6]}
    assert back.summary()["asl"] == {"words": 1, "exemplars": 2, "aliases": 0, "multi_word": 1,
                                     "code_length": {"min": 1, "median": 1.5, "max": 2}}
    assert "aliases" not in data  # a dictionary without aliases is written as before aliases existed


def test_aliases_round_trip_and_are_validated(tmp_path):
    d = small()
    assert d.add_alias("asl", "Take Off", "Takes  OFF") == "takes off"
    assert d.add_alias("asl", "take off", "took off") == "took off"
    assert d.add_alias("asl", "take off", "take off") is None and d.add_alias("asl", "take off", "took off")
    assert d.aliases_of("asl", "TAKE OFF") == ["takes off", "took off"] and d.alias_owner("asl", "Took Off") == \
        "take off"
    assert d.summary()["asl"]["aliases"] == 2 and d.summary()["csl"]["aliases"] == 0
    with pytest.raises(KeyError, match="no dictionary entry 'put on'"):
        d.add_alias("asl", "put on", "puts on")
    d.add("asl", "put on", np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="already an alias of 'take off'"):
        d.add_alias("asl", "put on", "took off")
    path = d.save(tmp_path / "dict.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["aliases"] == {"asl": {"take off": ["takes off", "took off"]}}
    back = SignDictionary.load(path)
    assert back.aliases == {"asl": {"take off": ["takes off", "took off"]}}
    # aliases of an entry removed by hand are ignored (they could not retrieve anything); two entries claiming one
    # form are refused, naming the file
    data["aliases"]["asl"]["give up"] = ["gave up"]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert SignDictionary.load(path).aliases == back.aliases
    data["aliases"]["asl"]["put on"] = ["took off"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DictionaryError, match=r"dict.json: aliases: alias 'took off' of 'put on' .* of 'take off'"):
        SignDictionary.load(path)


def test_form_aliases_skip_forms_that_name_two_entries():
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 16, "rhand": 16})
    for w in ("spiel", "spielen", "lehrer", "mögen"):
        d.add("dgs", w, np.zeros((1, 3), np.int64))
    d.add("asl", "mag", np.zeros((1, 3), np.int64))
    forms = [("dgs", "Spiel", ["Spiele"]), ("dgs", "spielen", ["spiele", "spielt"]), ("dgs", "Lehrer", ["Lehrer"]),
             ("dgs", "mögen", ["mag", "spielen"]), ("dgs", "gehen", ["geht"])]
    # "spiele": two entries; "spielen": another entry's key; "Lehrer": the key itself; "gehen": no entry.
    # The English entry "mag" does not stop the German alias "mag".
    assert add_form_aliases(d, forms) == 2
    assert d.aliases == {"dgs": {"spielen": ["spielt"], "mögen": ["mag"]}}


def test_invalid_entries_are_refused_with_the_reason():
    d = small()
    with pytest.raises(ValueError, match=r"code 8 of part 'body' at step 1 is outside its codebook \[0, 8\)"):
        d.add("asl", "x", np.array([[0, 0, 0], [8, 0, 0]]))
    with pytest.raises(ValueError, match="different code lengths"):
        d.add("asl", "x", {"body": [1, 2], "lhand": [1], "rhand": [1]})
    with pytest.raises(KeyError, match="unknown language 'bsl'"):
        d.add("bsl", "x", np.zeros((1, 3), np.int64))


def test_dictionary_from_another_tokenizer_is_refused(tmp_path):
    path = small().save(tmp_path / "dict.json")
    with pytest.raises(DictionaryMismatchError) as err:
        SignDictionary.load(path, expected_hash="fff999")
    msg = str(err.value)
    assert "abc123" in msg and "fff999" in msg and "soke dict build" in msg and str(path) in msg
    with pytest.raises(DictionaryMismatchError, match="codebook sizes"):
        SignDictionary.load(path).check_tokenizer("abc123", codebook_sizes={"body": 96, "lhand": 192, "rhand": 192})
    with pytest.raises(DictionaryError, match="does not exist.*soke dict build"):
        SignDictionary.load(tmp_path / "missing.json")


def _write_word2code(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def entry(n):
        return {"body": rng.integers(0, 96, n).tolist(), "lhand": rng.integers(0, 192, n).tolist(),
                "rhand": rng.integers(0, 192, n).tolist()}

    data = {"老师": entry(10), "3": entry(10), "neg-heiss": entry(10), "p+o+p": entry(12), "take off": entry(17),
            "gallaudet": entry(72)}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_official_word2code_import(tmp_path):
    src = _write_word2code(tmp_path / "word2code.json")
    d = import_word2code(src, latin_lang="asl")
    assert d.tokenizer_hash == OFFICIAL_IMPORT_HASH and d.codebook_sizes == {"body": 96, "lhand": 192, "rhand": 192}
    assert d.words("csl") == ["老师"]
    assert d.words("asl") == ["3", "neg-heiss", "p+o+p", "take off", "gallaudet"]
    raw = json.loads(src.read_text(encoding="utf-8"))
    np.testing.assert_array_equal(d.exemplars("asl", "gallaudet")[0][:, 2], raw["gallaudet"]["rhand"])
    assert import_word2code(src, lang="dgs").words("dgs") == list(raw)
    with pytest.raises(DictionaryError, match="'3' has no CJK characters.*--latin-lang"):
        import_word2code(src)
    with pytest.raises(DictionaryError, match="outside its codebook"):
        import_word2code(src, latin_lang="asl", codebook_sizes={"body": 8, "lhand": 192, "rhand": 192})
    # an unbound import is refused by a real tokenizer, with the way to bind it
    with pytest.raises(DictionaryMismatchError, match="soke dict import word2code.json --tokenizer"):
        d.check_tokenizer("0" * 64)
    # the raw official file is recognised and the converter named
    with pytest.raises(DictionaryError, match="soke dict import"):
        SignDictionary.load(src)


def test_soke_dict_import_match_and_info_tools(tmp_path, capsys):
    src = _write_word2code(tmp_path / "word2code.json")
    out = tmp_path / "official.json"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["import", str(src), "--out", str(out), "--latin-lang", "dgs"])) == 0
    assert SignDictionary.load(out, expected_hash=OFFICIAL_IMPORT_HASH).words("dgs")[:2] == ["3", "neg-heiss"]
    capsys.readouterr()
    args = parser.parse_args(["match", str(out), "--lang", "dgs", "--text", "Es ist neg-heiss, P+O+P 3!", "--prompt"])
    assert cli.run(args) == 0
    text = capsys.readouterr().out
    lines = [line.strip() for line in text.splitlines()]
    assert lines[1].startswith("3 dictionary hits (words), 3 injected")
    assert lines[2:5] == ["1. 'neg-heiss' at [7:16]  codes 10 -> 10", "2. 'p+o+p' at [18:23]  codes 12 -> 10",
                          "3. '3' at [24:25]  codes 10 -> 10"]
    assert "Schlüsselwort 3, <body_" in text
    assert cli.run(parser.parse_args(["info", str(out), "--json", str(tmp_path / "info.json")])) == 0
    info = json.loads((tmp_path / "info.json").read_text(encoding="utf-8"))
    assert info["languages"]["dgs"]["words"] == 5 and info["languages"]["csl"]["words"] == 1


def test_soke_dict_match_names_alias_and_suffix_hits(tmp_path, capsys):
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 16, "rhand": 16})
    for i, w in enumerate(["helfen", "handy", "kind"]):
        d.add("dgs", w, np.full((4 + i, 3), i, np.int64))
    d.add_alias("dgs", "helfen", "hilft")
    path = d.save(tmp_path / "d.json")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    text = "Er hilft dem Kind mit zwei Handys."
    assert cli.run(parser.parse_args(["match", str(path), "--lang", "dgs", "--text", text])) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines[1:4] == ["2 dictionary hits (words), 2 injected, order longest:",
                          "1. 'helfen' as 'hilft' (alias) at [3:8]  codes 4 -> 4", "2. 'kind' at [13:17]  codes 6 -> 6"]
    args = ["match", str(path), "--lang", "dgs", "--text", text, "--inflection", "suffix"]
    assert cli.run(parser.parse_args(args)) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines[3] == "2. 'handy' as 'Handys' (suffix) at [27:33]  codes 5 -> 5"  # longest key first
    assert lines[5].startswith("content words covered: 3/5;")  # er, hilft, kind, zwei, handys


# ------------------------------------------------------------------------------------------------------- build
@pytest.fixture(scope="module")
def word_store(tmp_path_factory):
    """A store whose train split has sentences and whose dictionary split has isolated signs (text = a word)."""
    from soke_lightning.core.layout import RAW_DIM, RAW_SLICES
    from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
    from soke_lightning.data.store import Sample, StoreWriter, open_store

    root = tmp_path_factory.mktemp("word_store")
    rng = np.random.default_rng(0)
    moving = np.r_[36:159, 169:179]

    def frames(t):
        out = np.zeros((t, RAW_DIM), np.float32)
        phase, freq = rng.uniform(0, 6, moving.size), rng.uniform(0.02, 0.15, moving.size)
        out[:, moving] = 0.3 * np.sin(np.arange(t)[:, None] * freq * 2 * np.pi + phase)
        out[:, RAW_SLICES["smplx_shape"]] = 0.1
        return out

    corpus = {"asl": "how2sign", "csl": "csl_daily", "dgs": "phoenix14t"}
    writer = StoreWriter(root, {"corpus": "test"})
    with writer.split("train") as out:
        for lang in WORDS:
            for i in range(2):
                out.add(Sample(f"{lang}_train_{i}", SENTENCES[lang], lang, corpus[lang], frames(48), 25.0))
    with writer.split("dictionary") as out:
        for lang, words in WORDS.items():
            for i, w in enumerate(words):
                meta = {"forms": FORMS[(lang, i)]} if (lang, i) in FORMS else {}
                out.add(Sample(f"{lang}_dict_{i}", w, lang, corpus[lang], frames(int(rng.integers(20, 60))), 25.0,
                               meta))
    mean, std, count = compute_stats(s.frames for s in open_store(root).split("train"))
    save_stats(root / STATS_FILE, mean, std, count, "test store")
    return root


@pytest.fixture(scope="module")
def tokenizer_ckpt(word_store, tmp_path_factory):
    from soke_lightning.data.normalization import Normalizer
    from soke_lightning.models.tokenizer import SignTokenizer

    torch.manual_seed(0)
    tok = SignTokenizer(**TINY)
    tok.train()(torch.randn(4, 40, 133))
    tok.normalizer.load_state_dict(Normalizer.from_file(word_store / "normalization.pt").state_dict())
    path = tmp_path_factory.mktemp("tok") / "tok.ckpt"
    tok.save_checkpoint(path)
    return path


def test_soke_dict_build_encodes_each_sign_with_the_tokenizer(word_store, tokenizer_ckpt, tmp_path, capsys):
    from soke_lightning.cli.lightning import build_datamodule
    from soke_lightning.data.datamodule import split_datasets
    from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash

    out = tmp_path / "dict.json"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    overrides = ["--set", f"init_args.stores=[{word_store}]"]
    args = parser.parse_args(["build", "--tokenizer", str(tokenizer_ckpt), "--data",
                              str(ROOT / "datamodules" / "synthsign.yaml"), "--out", str(out), "--batch-size", "4",
                              *overrides])
    assert cli.run(args) == 0
    assert f"wrote {out} (8 entries" in capsys.readouterr().out
    digest = tokenizer_hash(tokenizer_ckpt)
    d = SignDictionary.load(out, expected_hash=digest)
    assert d.codebook_sizes == TINY["codebook_sizes"] and d.parts == PARTS
    assert d.words("asl") == ["apple", "take off"] and len(d.exemplars("asl", "apple")) == 2
    assert d.words("dgs") == ["apfel", "heute abend", "essen"]
    # the samples' recorded forms are aliases; a store without forms (csl here) gives keys only
    assert d.aliases == {"asl": {"apple": ["apples", "apple's"], "take off": ["takes off", "took off"]},
                         "dgs": {"apfel": ["äpfel"], "essen": ["isst", "gegessen"]}}
    assert cli.run(parser.parse_args([*_argv(args, out.with_name("keys.json")), "--no-aliases"])) == 0
    assert SignDictionary.load(out.with_name("keys.json")).aliases == {}
    tok = SignTokenizer.from_checkpoint(tokenizer_ckpt)
    dm = build_datamodule(str(ROOT / "datamodules" / "synthsign.yaml"), [f"init_args.stores=[{word_store}]"])
    ds = split_datasets(dm, ["dictionary"])["dictionary"]
    seen = {}
    for i in range(len(ds)):
        item = ds[i]
        k = seen[(item.lang, item.text)] = seen.get((item.lang, item.text), -1) + 1
        expected = tok.encode(item.poses[None])[0].numpy()
        np.testing.assert_array_equal(d.exemplars(item.lang, item.text)[k], expected)
    # a model using another tokenizer refuses this dictionary
    other = SignTokenizer(**TINY)
    with pytest.raises(DictionaryMismatchError, match=digest):
        SignDictionary.load(out, expected_hash=tokenizer_hash(other))
    # coverage of the sentences (the / is / ist / der / 了 are function words): apple of {apple, red};
    # 老师 吃 苹果 of the same; heute abend + apfel of {heute, abend, apfel, rot}
    capsys.readouterr()
    assert cli.run(parser.parse_args(["info", str(out), "--store", str(word_store), "--split", "train",
                                      "--json", str(tmp_path / "info.json")])) == 0
    cov = json.loads((tmp_path / "info.json").read_text(encoding="utf-8"))["coverage"]["per_language"]
    assert cov["asl"] == {"sentences": 2, "sentence_hit_rate": 1.0, "content_word_coverage": 0.5,
                          "entries_per_sentence": 1.0}
    assert cov["csl"]["content_word_coverage"] == 1.0 and cov["csl"]["entries_per_sentence"] == 3.0
    assert cov["dgs"]["content_word_coverage"] == 0.75 and cov["dgs"]["entries_per_sentence"] == 2.0


def _argv(args, out) -> list[str]:
    """The `soke dict build` command line of ``args`` writing to ``out``."""
    return ["build", "--tokenizer", args.tokenizer, "--data", args.data, "--out", str(out), "--batch-size",
            str(args.batch_size), *[x for kv in args.set for x in ("--set", kv)]]


def test_span_codes_keep_the_steps_covering_the_sign():
    from soke_lightning.retrieval.dictionary import span_codes

    assert span_codes([12, 30], 48, 48, 4, 12) == (3, 8)        # frames 12..29 -> steps 3..7
    assert span_codes([0, 48], 48, 48, 4, 12) == (0, 12)        # the whole clip
    assert span_codes([20, 24], 48, 48, 4, 12) == (5, 6)        # at least one step
    assert span_codes([10, 20], 30, 60, 4, 15) == (5, 10)       # a resampled clip (30 -> 60 frames) scales the span
    with pytest.raises(ValueError, match="not inside"):
        span_codes([40, 50], 48, 48, 4, 12)
