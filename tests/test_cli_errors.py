"""Every bad input gets one line `soke <command>: <file or key>: <problem>; <fix>` and exit code 2 (no traceback),
damaged stores and dictionaries of every kind are refused instead of read wrong, and bugs keep their traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soke_lightning import cli
from soke_lightning.data.store import Sample, StoreWriter
from soke_lightning.retrieval.dictionary import SignDictionary

REBUILD = "re-create it (`soke prepare ... --overwrite --split test`, or `soke synth` for SynthSign)"
DICT_FIX = "rebuild it with `soke dict build` or `soke dict import`"


def _store(root):
    rng = np.random.default_rng(0)
    with StoreWriter(root, {"corpus": "synthsign"}).split("test") as split:
        for i in range(8):
            split.add(Sample(f"s{i}", f"hello {i}", ("asl", "csl", "dgs")[i % 3], "synthsign",
                             rng.standard_normal((5 + i, 179)).astype(np.float32), 25.0))
    return root


def _edit_index(root, edit):
    path = root / "test" / "index.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(records)))


def _garbage_line(root):
    path = root / "test" / "index.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = "{garbage"
    path.write_text("\n".join(lines) + "\n")


def _swap_lengths(records):
    records[4]["length"], records[5]["length"] = records[5]["length"], records[4]["length"]
    return records


def _no_splits(root):
    (root / "store.json").write_text(json.dumps({"format": "soke-store", "version": 1, "raw_dim": 179, "splits": {}}))


def _nan_frames(root):
    frames = np.memmap(root / "test" / "frames.bin", dtype="<f4", mode="r+")
    frames[30 * 179:31 * 179] = np.nan  # frame 30 belongs to sample s4 (offsets 0, 5, 11, 18, 26, 35, ...)
    frames.flush()


#: name -> (damage, argv after the store, the exact line); {s} is the store folder.
DAMAGED_STORES = {
    "index garbage line": (_garbage_line, ["data", "info"],
                           "soke data info: {s}/test/index.jsonl: line 4: not valid JSON (Expecting property name "
                           "enclosed in double quotes at column 2); the store is damaged: " + REBUILD),
    "truncated store.json": (lambda r: (r / "store.json").write_text('{\n  "format": "soke-store",\n  "raw_dim": 179,\n'),
                             ["data", "info"],
                             "soke data info: {s}/store.json: not valid JSON (line 4 column 1: Expecting property name "
                             "enclosed in double quotes); the store is damaged: remove {s} and write the store again "
                             "(`soke prepare` or `soke synth`)"),
    "record without length": (lambda r: _edit_index(r, lambda rs: [{k: v for k, v in x.items() if k != "length"
                                                                     or x["name"] != "s2"} for x in rs]),
                              ["data", "info"],
                              "soke data info: {s}/test/index.jsonl: line 3: field 'length' is missing; the store is "
                              "damaged: " + REBUILD),
    "length of the wrong type": (lambda r: _edit_index(r, lambda rs: [{**x, "length": str(x["length"])} for x in rs]),
                                 ["data", "info"],
                                 "soke data info: {s}/test/index.jsonl: line 1: field 'length' is '5', expected int; "
                                 "the store is damaged: " + REBUILD),
    "offsets zeroed": (lambda r: _edit_index(r, lambda rs: [{**x, "offset": 0} for x in rs]), ["render"],
                       "soke render: {s}/test/index.jsonl: line 2 (sample 's1'): offset 0 but the samples before it "
                       "end at frame 5; the index does not match frames.bin, the store is damaged: " + REBUILD),
    "two lengths swapped": (lambda r: _edit_index(r, _swap_lengths), ["data", "info"],
                            "soke data info: {s}/test/index.jsonl: line 6 (sample 's5'): offset 35 but the samples "
                            "before it end at frame 36; the index does not match frames.bin, the store is damaged: "
                            + REBUILD),
    "duplicate name": (lambda r: _edit_index(r, lambda rs: [{**x, "name": "s0"} if x["name"] == "s1" else x
                                                            for x in rs]), ["data", "info"],
                       "soke data info: {s}/test/index.jsonl: line 2: sample name 's0' appears twice; the store is "
                       "damaged: " + REBUILD),
    "truncated frames.bin": (lambda r: (r / "test/frames.bin").write_bytes((r / "test/frames.bin").read_bytes()[:-100]),
                             ["data", "info"],
                             "soke data info: {s}/test/frames.bin: holds 48588 bytes but the index describes 68 frames "
                             "x 179 float32 = 48688 bytes; the store is corrupt: " + REBUILD),
    "a sample dropped from the index": (lambda r: _edit_index(r, lambda rs: rs[:-1]), ["data", "info"],
                                        "soke data info: {s}/test/frames.bin: holds 48688 bytes but the index "
                                        "describes 56 frames x 179 float32 = 40096 bytes; the store is corrupt: "
                                        + REBUILD),
    "store.json with no split": (_no_splits, ["data", "info"],
                                 "soke data info: {s}: no committed split (store.json lists none: the first write "
                                 "failed or was interrupted); write a split with `soke prepare` or `soke synth`"),
    "NaN frames, data stats": (_nan_frames, ["data", "stats", "--split", "test"],
                               "soke data stats: {s}/test/frames.bin: sample 's4' has non-finite frames (NaN or inf), "
                               "so no statistics can be computed; re-create the split (`soke data verify {s}` lists "
                               "every such sample)"),
    "NaN frames, render": (_nan_frames, ["render", "--names", "s4"],
                           "soke render: {s}/test/frames.bin: sample 's4' (#4) has non-finite frames (NaN or inf); the "
                           "store is damaged: " + REBUILD + " (`soke data verify {s}` lists every such sample)"),
}


@pytest.mark.parametrize("case", list(DAMAGED_STORES))
def test_damaged_store_gives_one_line(tmp_path, capsys, case):
    damage, command, expected = DAMAGED_STORES[case]
    store = _store(tmp_path / "st")
    damage(store)
    argv = [*command[:2], str(store), *command[2:]] if command[0] == "data" else [command[0], str(store),
                                                                                   *command[1:]]
    if command[0] == "render":
        argv += ["--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == expected.format(s=store) + "\n"


def test_verify_finds_nan_samples_and_changed_bytes(tmp_path, capsys):
    store = _store(tmp_path / "st")
    assert cli.main(["data", "verify", str(store), "--no-progress"]) == 0
    assert capsys.readouterr().out == "test                8 samples          68 frames  ok\n"
    _nan_frames(store)
    assert cli.main(["data", "info", str(store)]) == 0  # opening is O(records): NaNs are verify's job
    capsys.readouterr()
    assert cli.main(["data", "verify", str(store), "--no-progress"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[:2] == ["test                8 samples          68 frames  2 problem(s)",
                         f"  {store}/test/frames.bin: 1 sample(s) with non-finite frames (NaN or inf): 's4'"]
    assert lines[2].startswith(f"  {store}/test/frames.bin: content hash ") and "recorded at commit" in lines[2]
    assert captured.err == (f"soke data verify: {store}: 2 problem(s) found; re-create the damaged splits (`soke "
                            f"prepare ... --overwrite --split S`, or `soke synth`)\n")


def _dictionary():
    d = SignDictionary("h" * 64, ("body", "lhand", "rhand"), {"body": 96, "lhand": 192, "rhand": 192})
    d.add("asl", "cup", {"body": [1, 2], "lhand": [3, 4], "rhand": [5, 6]})
    return json.loads(json.dumps(d.to_json()))


def _set_codes(codes):
    def edit(data):
        data["entries"]["asl"]["cup"][0] = codes
    return edit


def _rename_language(data):
    data["entries"]["bsl"] = data["entries"].pop("asl")


#: name -> (edit of the dictionary JSON, the exact message after `soke dict info: {f}: `)
DAMAGED_DICTIONARIES = {
    "code outside the codebook": (_set_codes([[500, 1, 1], [1, 1, 1]]),
                                  "entries.asl.cup[0]: code 500 of part 'body' at step 0 is outside its codebook [0, "
                                  "96); the codes were made by another tokenizer than the codebook sizes {'body': 96, "
                                  "'lhand': 192, 'rhand': 192} say; " + DICT_FIX),
    "ragged parts": (_set_codes([[1, 1, 1], [1, 1]]),
                     "entries.asl.cup[0]: code rows have different lengths; every step needs one code per part "
                     "['body', 'lhand', 'rhand']; " + DICT_FIX),
    "a string instead of codes": (_set_codes("abc"),
                                  "entries.asl.cup[0]: codes are a string 'abc', expected [L >= 1, 3] integers (parts "
                                  "['body', 'lhand', 'rhand']); " + DICT_FIX),
    "a string as one part": (_set_codes({"body": "ab", "lhand": [1, 2], "rhand": [1, 2]}),
                             "entries.asl.cup[0]: part 'body' is str 'ab', expected a list of integer codes; "
                             + DICT_FIX),
    "unknown language": (_rename_language,
                         "entries.bsl.cup[0]: unknown language 'bsl'; valid languages: asl, csl, dgs; " + DICT_FIX),
    "no entries key": (lambda data: data.pop("entries"),
                       "key 'entries' is missing from the dictionary file; " + DICT_FIX),
}


@pytest.mark.parametrize("case", list(DAMAGED_DICTIONARIES))
def test_damaged_dictionary_gives_one_line(tmp_path, capsys, case):
    edit, expected = DAMAGED_DICTIONARIES[case]
    data = _dictionary()
    edit(data)
    path = tmp_path / "dict.json"
    path.write_text(json.dumps(data))
    assert cli.main(["dict", "info", str(path)]) == 2
    assert capsys.readouterr().err == f"soke dict info: {path}: {expected}\n"


def test_missing_truncated_dictionary_and_unknown_language(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert cli.main(["dict", "match", str(missing), "--lang", "asl", "--text", "a cup"]) == 2
    assert capsys.readouterr().err == (
        f"soke dict match: {missing}: sign dictionary does not exist; build one with `soke dict build --tokenizer CKPT "
        f"--data DATAMODULE_YAML --out {missing}` or import the official one with `soke dict import word2code.json "
        f"--out {missing}`\n")
    good = tmp_path / "dict.json"
    good.write_text(json.dumps(_dictionary()))
    truncated = tmp_path / "trunc.json"
    truncated.write_text(good.read_text()[:50])
    assert cli.main(["dict", "match", str(truncated), "--lang", "asl", "--text", "a cup"]) == 2
    assert capsys.readouterr().err.startswith(f"soke dict match: {truncated}: sign dictionary is not valid JSON (")
    assert cli.main(["dict", "match", str(good), "--lang", "bsl", "--text", "a cup"]) == 2
    assert capsys.readouterr().err == "soke dict match: unknown language 'bsl'; valid languages: asl, csl, dgs\n"
    word2code = tmp_path / "word2code.json"
    word2code.write_text(json.dumps({"cup": {"body": [1], "lhand": [2], "rhand": [3]}}))
    assert cli.main(["dict", "import", str(word2code), "--out", str(tmp_path / "imp.json")]) == 2
    assert capsys.readouterr().err == (
        f"soke dict import: {word2code}: entry 'cup' has no CJK characters, so its language cannot be inferred; pass "
        f"--latin-lang asl|dgs (language of such entries) or --lang to declare the language of every entry\n")
    assert not (tmp_path / "imp.json").exists()


def test_missing_and_damaged_checkpoint(tmp_path, capsys):
    missing = tmp_path / "none.ckpt"
    argv = ["--lang", "asl", "--text", "hi", "--out", str(tmp_path / "g")]
    assert cli.main(["generate", "--ckpt", str(missing), *argv]) == 2
    assert capsys.readouterr().err == (f"soke generate: {missing}: stage-2 checkpoint does not exist; train one with "
                                       f"`soke fit --config experiments/stage2/demo.yaml`\n")
    damaged = tmp_path / "bad.ckpt"
    damaged.write_bytes(b"not a checkpoint")
    assert cli.main(["generate", "--ckpt", str(damaged), *argv]) == 2
    assert capsys.readouterr().err == (f"soke generate: {damaged}: not a readable stage-2 checkpoint (UnpicklingError: "
                                       f"invalid load key, 'n'.); train one with `soke fit --config "
                                       f"experiments/stage2/demo.yaml`\n")
    assert not (tmp_path / "g").exists()


def test_debug_shows_the_traceback_and_bugs_keep_theirs(tmp_path, capsys, monkeypatch):
    assert cli.main(["--debug", "data", "info", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "StoreError" in err
    assert err.endswith(f"soke data info: {tmp_path / 'none'}: not a soke store (store.json is missing); create one "
                        f"with `soke prepare` (official corpora) or `soke synth` (SynthSign)\n")
    monkeypatch.setenv("SOKE_DEBUG", "1")
    assert cli.main(["data", "info", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("Traceback")
    monkeypatch.delenv("SOKE_DEBUG")

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("soke_lightning.cli.data.open_store", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        cli.main(["data", "info", str(tmp_path / "none")])


def test_the_console_script_prints_one_line_without_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "soke_lightning.cli", "data", "info", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == (f"soke data info: {tmp_path / 'none'}: not a soke store (store.json is missing); create "
                           f"one with `soke prepare` (official corpora) or `soke synth` (SynthSign)\n")


def test_config_files_missing_or_not_yaml(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: x\n   bad: [\n")
    assert cli.main(["fit", "--config", str(bad)]) == 2
    assert capsys.readouterr().err == f"soke fit: {bad}:3:7: invalid YAML (mapping values are not allowed here); fix the file\n"
    assert cli.main(["fit", "--config", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err == (f"soke fit: {tmp_path / 'none.yaml'}: config file does not exist; check the path "
                                       f"(configs live in experiments/ and datamodules/)\n")
    argv = ["dict", "build", "--tokenizer", str(tmp_path / "x.ckpt"), "--out", str(tmp_path / "d.json"), "--data"]
    assert cli.main([*argv, str(bad)]) == 2
    assert capsys.readouterr().err == (f"soke dict build: {bad}:3:7: invalid YAML (mapping values are not allowed "
                                       f"here); fix the file\n")
    assert cli.main([*argv, str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err == (f"soke dict build: {tmp_path / 'none.yaml'}: datamodule YAML does not exist; "
                                       f"check the path (configs live in experiments/ and datamodules/)\n")


def test_render_of_a_missing_store_and_prepare_of_an_empty_split(tmp_path, capsys):
    from soke_lightning.data.official import write_official_split

    assert cli.main(["render", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (f"soke render: {tmp_path / 'none'}: not a soke store (store.json is missing); "
                                       f"create one with `soke prepare` (official corpora) or `soke synth` "
                                       f"(SynthSign)\n")
    write_official_split(tmp_path / "raw", "csl_daily", "train", [])
    assert cli.main(["prepare", "--corpus", "csl_daily", "--root", str(tmp_path / "raw"), "--out",
                     str(tmp_path / "st"), "--split", "train", "--workers", "0", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"soke prepare: {tmp_path / 'raw' / 'csl_clean.train'}: split 'train' has no usable sample (0 listed; "
        f"skipped: it lists none); check the split file, --exclude and --min-frames (warnings above name the skipped "
        f"files)")
    assert not (tmp_path / "st" / "store.json").exists()  # no store that `data info` would call valid and empty


def test_fit_on_a_missing_store(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "out"))
    missing = tmp_path / "none"
    root = Path(__file__).resolve().parents[1]
    assert cli.main(["fit", "--config", str(root / "experiments/stage1/debug.yaml"), "--data",
                     str(root / "datamodules/synthsign.yaml"),
                     "--data.init_args.stores", f"[{missing}]", "--trainer.fast_dev_run", "true",
                     "--trainer.logger", "false"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"soke fit: {missing}: not a soke store (store.json is missing); create one with `soke prepare` (official "
        f"corpora) or `soke synth` (SynthSign)")
