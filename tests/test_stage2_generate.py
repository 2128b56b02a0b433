"""`soke generate` on the debug stage-2 checkpoint (built once per session by test_stage2_lm.pipeline): .npz in the
official layout + GIF per sentence, ground truth next to the prediction in --store mode, clear errors for bad input."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from soke_lightning.cli import generate
from soke_lightning.cli import main as soke_main
from soke_lightning.core.layout import RAW_DIM
from soke_lightning.core.types import Request
from soke_lightning.pipelines.generate import GenerateError, build_prompts, prompt_settings
from test_stage2_lm import pipeline


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return pipeline(tmp_path_factory)


def _main(ckpt, out, *argv) -> int:
    """`soke generate ...` through the command's error boundary (user errors: one line, exit code 2)."""
    return soke_main(["generate", "--ckpt", str(ckpt), "--out", str(out), *argv])


def _args(ckpt, out, *argv):
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    return parser.parse_args(["--ckpt", str(ckpt), "--out", str(out), *argv])


def test_generate_writes_npz_and_gif_per_sentence(run, tmp_path, capsys):
    texts = ["In the morning the student flies to the zoo.", "The teacher is happy."]
    out = tmp_path / "gen"
    assert generate.run(_args(run["ckpt"], out, "--lang", "asl", "--text", texts[0], "--text", texts[1])) == 0
    printed = capsys.readouterr().out
    assert texts[0] in printed and "wrote 2 sentence(s)" in printed
    for i, text in enumerate(texts):
        data = np.load(out / f"{i:03d}_asl.npz")
        raw, joints = data["raw"], data["joints"]
        assert raw.ndim == 2 and raw.shape[1] == RAW_DIM and raw.shape[0] % 4 == 0 and raw.shape[0] >= 4
        assert joints.shape[:1] == raw.shape[:1] and joints.shape[2] == 3 and np.isfinite(joints).all()
        assert str(data["text"]) == text and str(data["lang"]) == "asl"
        assert (out / f"{i:03d}_asl.gif").stat().st_size > 1000


def test_generate_from_store_renders_next_to_ground_truth(run, tmp_path):
    out = tmp_path / "store"
    assert generate.run(_args(run["ckpt"], out, "--store", str(run["store"]), "--split", "test", "--n", "1",
                              "--formats", "npz")) == 0
    files = sorted(p.name for p in out.glob("*.npz"))
    assert len(files) == 3 and {f.split("_")[0] for f in files} == {"asl", "csl", "dgs"}


@pytest.mark.parametrize("argv, message", [
    (["--lang", "bsl", "--text", "hello"], "unknown language 'bsl'"),
    (["--text", "hello"], "--lang is required"),
    (["--lang", "asl", "--text", "   "], "the text is empty"),
    (["--lang", "dgs", "--text", " ".join(["Flughafen"] * 300)], "too long"),
    (["--lang", "asl", "--text", "hello", "--dictionary", "missing.json"], "--dictionary missing.json"),
])
def test_bad_inputs_give_clear_errors(run, tmp_path, capsys, argv, message):
    assert _main(run["ckpt"], tmp_path / "bad", *argv) == 2
    line = capsys.readouterr().err.splitlines()[-1]  # after the INFO lines of loading the checkpoint
    assert line.startswith("soke generate: ") and message in line
    assert not (tmp_path / "bad").exists()


def test_input_file_with_only_blank_lines_is_refused(run, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("\n  \n", encoding="utf-8")
    assert _main(run["ckpt"], tmp_path / "o", "--lang", "csl", "--input", str(path)) == 2
    assert "holds no sentence" in capsys.readouterr().err


def _dictionary(run, path, digest=None):
    from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
    from soke_lightning.retrieval import SignDictionary

    tok = SignTokenizer.from_checkpoint(run["stage1"])
    sizes = dict(tok.codebook_sizes)
    d = SignDictionary(digest or tokenizer_hash(run["stage1"]), tuple(tok.parts), sizes)
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, sizes[p], 6) for p in tok.parts], axis=1)
    d.add("asl", "teacher", codes)
    d.save(path)
    return codes


def test_generate_with_a_dictionary_injects_retrieved_signs(run, tmp_path, caplog):
    codes = _dictionary(run, tmp_path / "dict.json")
    request = Request(name="000_asl", lang="asl", text="The teacher is happy.")
    from soke_lightning.training.lm_stage import LMStage

    stage = LMStage.from_checkpoint(run["ckpt"])
    prompt = build_prompts(stage, [request], str(tmp_path / "dict.json"))[0]
    assert prompt.startswith("The teacher is happy. Key word 1, ")
    assert f"<body_{codes[0, 0]}><lhand_{codes[0, 1]}><rhand_{codes[0, 2]}>" in prompt
    out = tmp_path / "gen"
    assert generate.run(_args(run["ckpt"], out, "--lang", "asl", "--text", request.text,
                              "--dictionary", str(tmp_path / "dict.json"), "--formats", "npz")) == 0
    assert (out / "000_asl.npz").is_file()


def test_generate_refuses_a_dictionary_of_another_tokenizer(run, tmp_path, capsys):
    _dictionary(run, tmp_path / "other.json", digest="0" * 64)
    argv = ["--lang", "asl", "--text", "The teacher is happy.", "--dictionary", str(tmp_path / "other.json")]
    assert _main(run["ckpt"], tmp_path / "bad", *argv) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("soke generate: ") and "0000000000" in line and "soke dict build" in line


def test_generation_uses_the_checkpoints_own_retrieval_recipe(run, tmp_path, caplog):
    import torch

    from soke_lightning.training.lm_stage import LMStage

    _dictionary(run, tmp_path / "dict.json")
    request = Request(name="000_asl", lang="asl", text="The teacher is happy.")
    stage = LMStage.from_checkpoint(run["ckpt"])
    assert prompt_settings(stage)["separator"] == "index"  # trained without retrieval: SOKE's defaults
    with caplog.at_level("WARNING"):
        stage.hparams["retrieval"] = True
        stage.retrieval_settings = {"dictionary": "d.json", "separator": "word", "order": "rarest", "top_k": 2,
                                    "entry_dropout": 0.3}
        assert build_prompts(stage, [request], None) == [request.text]
    assert "trained with retrieval prompts (dictionary d.json) but no --dictionary" in caplog.text
    # the recipe's order 'rarest' needs the training frequencies the retrieval callback recorded in the checkpoint
    with pytest.raises(GenerateError, match="records no frequency table; pass --order longest"):
        build_prompts(stage, [request], str(tmp_path / "dict.json"), ckpt=run["ckpt"])
    ckpt = tmp_path / "with_state.ckpt"
    torch.save({"callbacks": {"RetrievalCallback": {"enabled": True, "frequency": {"asl": {"teacher": 3}}}}}, ckpt)
    settings = prompt_settings(stage, ckpt)
    assert (settings["separator"], settings["order"], settings["top_k"]) == ("word", "rarest", 2)
    assert settings["frequency"] == {"asl": {"teacher": 3}} and "entry_dropout" not in settings
    (prompt,) = build_prompts(stage, [request], str(tmp_path / "dict.json"), ckpt=ckpt)
    assert prompt.startswith("The teacher is happy. Key word 1, teacher: <body_")
    # command-line options win over the recipe
    (prompt,) = build_prompts(stage, [request], str(tmp_path / "dict.json"), separator="index", order="longest")
    assert prompt.startswith("The teacher is happy. Key word 1, <body_")


def test_generate_with_int8_decoder_steps(run, tmp_path, capsys):
    out = tmp_path / "int8"
    text = "The teacher is happy."
    assert generate.run(_args(run["ckpt"], out, "--lang", "asl", "--text", text, "--precision", "int8",
                              "--formats", "npz")) == 0
    data = np.load(out / "000_asl.npz")
    assert data["raw"].shape[1] == RAW_DIM and np.isfinite(data["joints"]).all()
    with pytest.raises(SystemExit):
        _args(run["ckpt"], out, "--lang", "asl", "--text", text, "--precision", "int4")
