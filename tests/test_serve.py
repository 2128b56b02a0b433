"""`soke serve` on the debug stage-2 checkpoint (built once per session by test_stage2_lm.pipeline): the service
loads once and caches, writes the three downloads and the animation, reports retrieval, refuses bad input with the
CLI's messages; the Gradio endpoint answers `gradio_client`; headless Chromium drives the page (test_serve_browser)."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from soke_lightning.cli import serve
from soke_lightning.core.layout import RAW_DIM
from soke_lightning.pipelines.generate import GenerateError
from soke_lightning.pipelines.serve import MAX_CHARS, SignService, SignSettings
from test_stage2_lm import pipeline

#: In CI the serve extra is installed: a missing Gradio there is a failure, not a skip.
REQUIRE = os.environ.get("CI") == "true" or bool(os.environ.get("SOKE_CI"))  # .ci/run sets SOKE_CI=1


def needs(module: str):
    """Import an optional package; outside CI a missing one skips the test with the install command."""
    if REQUIRE:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install -e \".[serve]\")")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return pipeline(tmp_path_factory)


def write_dictionary(run, path):
    """A one-entry sign dictionary ("teacher", 6 random code steps) bound to the pipeline's tokenizer."""
    from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
    from soke_lightning.retrieval import SignDictionary

    tok = SignTokenizer.from_checkpoint(run["stage1"])
    sizes = dict(tok.codebook_sizes)
    d = SignDictionary(tokenizer_hash(run["stage1"]), tuple(tok.parts), sizes)
    codes = np.stack([np.random.default_rng(0).integers(0, sizes[p], 6) for p in tok.parts], axis=1)
    d.add("asl", "teacher", codes)
    d.save(path)
    return codes


@pytest.fixture(scope="module")
def service(run, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    write_dictionary(run, root / "dict.json")
    return SignService(run["ckpt"], root / "files", dictionary=root / "dict.json", baseline_store=run["store"],
                       cache_size=3, gif_height=160)


def test_sign_writes_animation_and_downloads_and_answers_repeats_from_the_cache(service, monkeypatch):
    service.clear_cache()
    result = service.sign("  The teacher is happy. ", "asl", SignSettings(retrieval=False))
    assert result.text == "The teacher is happy." and not result.cached
    assert set(result.files) == {"npz", "pose", "bvh"}
    raw = np.load(result.files["npz"])["raw"]
    assert raw.shape == (result.frames, RAW_DIM) and result.frames == 4 * result.code_steps
    assert result.files["bvh"].read_text().startswith("HIERARCHY")
    assert result.files["pose"].stat().st_size > 1000
    with Image.open(result.gif) as gif:
        assert gif.format == "GIF" and gif.n_frames > 1
    assert 1 <= result.code_steps <= 16 and result.decoder_passes >= result.code_steps and result.latency_s > 0
    assert result.prompt == result.text and result.prompt_tokens > 0 and result.retrieved == ()

    calls = []
    monkeypatch.setattr(service.stage, "generate", lambda *a, **k: calls.append(a))
    again = service.sign("The teacher is happy.", "asl", SignSettings(retrieval=False))
    assert again.cached and again.gif == result.gif and calls == []  # served without running the model
    assert "cached answer" in serve.describe(again)


def test_the_cache_evicts_the_oldest_result_and_its_files(service):
    service.clear_cache()
    short = SignSettings(max_codes=2)  # a few frames: the cache, not the model, is under test
    first = service.sign("They are young.", "asl", short)
    for text, lang in (("They read ten maps.", "asl"), ("Paul fängt den Fisch.", "dgs"), ("岛很坏。", "csl")):
        service.sign(text, lang, short)
    assert service.cache_info() == {"size": 3, "capacity": 3}
    assert not first.gif.parent.exists()
    assert not service.sign("They are young.", "asl", short).cached


def test_retrieval_puts_the_dictionary_sign_into_the_prompt_and_reports_it(run, service):
    codes = write_dictionary(run, service.out_dir.parent / "check.json")
    with_retrieval = service.sign("The teacher is happy.", "asl", SignSettings(retrieval=True))
    without = service.sign("The teacher is happy.", "asl", SignSettings(retrieval=False))
    assert [(r.word, r.via, r.codes, r.total_codes) for r in with_retrieval.retrieved] == [("teacher", "key", 6, 6)]
    assert f"<body_{codes[0, 0]}><lhand_{codes[0, 1]}><rhand_{codes[0, 2]}>" in with_retrieval.prompt
    assert with_retrieval.prompt_tokens > without.prompt_tokens and without.retrieved == ()
    text = serve.describe(with_retrieval)
    assert "| teacher | key | 6 of 6 |" in text and f"Prompt: {with_retrieval.prompt_tokens} tokens" in text


def test_sampling_is_reproducible_with_its_seed(service):
    settings = SignSettings(sample=True, temperature=1.5, top_k=4, top_p=0.9, seed=7, retrieval=False)
    first = np.load(service.sign("They moved to Leipzig.", "asl", settings).files["npz"])["raw"]
    service.clear_cache()
    second = np.load(service.sign("They moved to Leipzig.", "asl", settings).files["npz"])["raw"]
    np.testing.assert_array_equal(first, second)


def test_comparison_renders_the_dictionary_concatenation_next_to_the_model(run, service):
    from soke_lightning.data.store import open_store

    word = open_store(run["store"]).split("dictionary").records[0]["text"]
    result = service.sign(f"The {word} is happy.", "asl", SignSettings(compare=True, retrieval=False))
    assert word in result.baseline_words
    with Image.open(result.comparison_gif) as gif:
        assert gif.n_frames > 1 and gif.size[0] > Image.open(result.gif).size[0]  # two panels
    assert f"Dictionary concatenation used: {', '.join(result.baseline_words)}" in serve.describe(result)


@pytest.mark.parametrize("text, lang, message", [
    ("   ", "asl", "text: the text is empty; give a sentence to sign"),
    ("x" * (MAX_CHARS + 1), "asl", f"at most {MAX_CHARS}"),
    (" ".join(["Flughafen"] * 300), "dgs", "the text is too long"),
    ("hello", "bsl", "unknown language 'bsl'"),
    ("hello", None, "--lang is required"),
])
def test_bad_input_gives_the_cli_message(service, text, lang, message):
    with pytest.raises(GenerateError, match=message.replace("(", r"\(")):
        service.sign(text, lang)


def test_a_language_the_checkpoint_lacks_is_refused(service, monkeypatch):
    monkeypatch.setattr(service, "languages", ["asl", "csl"])
    with pytest.raises(GenerateError, match=r"does not generate dgs \(de_DGS\); it knows asl, csl"):
        service.sign("Der Onkel fängt den Fisch.", "dgs")


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature must be > 0"), ({"top_p": 0.0}, "top-p must be in"),
    ({"top_k": -1}, "top-k must be >= 0"), ({"max_codes": 0}, "max codes must be >= 1"),
])
def test_settings_out_of_range_are_refused(kwargs, message):
    with pytest.raises(GenerateError, match=message):
        SignSettings(**kwargs)


def test_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    needs("gradio")
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert serve.run(parser.parse_args(["--ckpt", str(tmp_path / "none.ckpt")])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.ckpt does not exist" in err and "make train-stage2" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(service):
    """The page on 127.0.0.1 (in this process), closed after the module."""
    needs("gradio")
    demo = serve.build_app(service, queue_size=4)
    port = free_port()
    serve.launch(demo, service, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_the_endpoint_answers_gradio_client_and_keeps_serving_after_bad_input(server):
    client_module = needs("gradio_client")
    from gradio_client.exceptions import AppError

    client = client_module.Client(server, verbose=False)
    with pytest.raises(AppError, match="text: the text is empty; give a sentence to sign"):
        client.predict("", "asl", False, False, "greedy", 1.0, 0, 1.0, 0, api_name="/sign")
    gif, comparison, info, files = client.predict("Der Onkel fängt den Fisch.", "dgs", False, True, "sampling",
                                                  0.8, 5, 0.9, 3, api_name="/sign")
    assert gif.endswith(".gif") and Image.open(gif).n_frames > 1
    assert comparison["visible"] and comparison["value"].endswith(".compare.gif")
    assert "German Sign Language" in info and "code steps" in info
    assert sorted(os.path.splitext(f)[1] for f in files) == [".bvh", ".npz", ".pose"]
    assert np.load(next(f for f in files if f.endswith(".npz")))["raw"].shape[1] == RAW_DIM


#: Where the browser tests leave their screenshots (a test artefact; CI keeps the folder).
ARTIFACTS = Path(os.environ.get("SOKE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"))


@pytest.fixture(scope="module")
def page(server):
    """A headless Chromium page (Debian's package, driven by Playwright) on the served demo."""
    sync_api = needs("playwright.sync_api")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        if REQUIRE:
            pytest.fail("Chromium is not installed; .ci/run installs the Debian package chromium")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        yield page
        browser.close()


def test_browser_types_a_sentence_and_sees_the_animation_play_and_three_downloads(page):
    from playwright.sync_api import expect

    page.locator("#soke-text textarea").fill("Der Onkel fängt den Fisch.")
    page.locator("#soke-lang").get_by_label("German Sign Language (dgs)").check()
    page.locator("#soke-generate").click()
    image = page.locator("#soke-animation img")
    expect(image).to_be_visible(timeout=60_000)
    assert image.get_attribute("src").endswith(".gif")
    page.wait_for_function("document.querySelector('#soke-animation img').naturalWidth > 0", timeout=30_000)
    # Playing: the pixels of the shown image change from one moment to the next.
    frames = {image.screenshot()}
    for _ in range(6):
        page.wait_for_timeout(250)
        frames.add(image.screenshot())
    assert len(frames) > 1
    links = page.locator("#soke-downloads a")
    expect(links).to_have_count(3, timeout=30_000)
    names = sorted(unquote(links.nth(i).get_attribute("href")).rsplit("/", 1)[1] for i in range(3))
    assert names == ["dgs_Der_Onkel_fängt_den_Fisch.bvh", "dgs_Der_Onkel_fängt_den_Fisch.npz",
                     "dgs_Der_Onkel_fängt_den_Fisch.pose"]
    shown = page.locator("#soke-downloads").inner_text()
    assert all(name.rsplit(".", 1)[1] in shown for name in names)
    expect(page.locator("#soke-info")).to_contain_text("German Sign Language")
    expect(page.locator("#soke-info")).to_contain_text("code steps")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)


def test_browser_empty_text_shows_the_cli_message(page):
    from playwright.sync_api import expect

    page.locator("#soke-text textarea").fill("   ")
    page.locator("#soke-generate").click()
    expect(page.get_by_text("error: text: the text is empty; give a sentence to sign").first).to_be_visible(
        timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-empty-text.png"), full_page=True)


def test_the_queue_is_bounded_and_refuses_the_overflow(service, monkeypatch):
    client_module = needs("gradio_client")
    from gradio_client.utils import Status

    started, release = threading.Event(), threading.Event()

    def blocked(text, lang, settings=None):  # holds the one worker until released
        started.set()
        release.wait(60)
        raise GenerateError("released")

    monkeypatch.setattr(service, "sign_stream", blocked)
    demo = serve.build_app(service, queue_size=1)
    port = free_port()
    serve.launch(demo, service, "127.0.0.1", port, block=False)
    try:
        client = client_module.Client(f"http://127.0.0.1:{port}/", verbose=False)
        request = ("They are young.", "asl", False, False, "greedy", 1.0, 0, 1.0, 0)
        running = client.submit(*request, api_name="/sign")
        assert started.wait(60)
        waiting = client.submit(*request, api_name="/sign")
        deadline = time.monotonic() + 30
        while waiting.status().code != Status.IN_QUEUE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.status().code == Status.IN_QUEUE
        refused = client.submit(*request, api_name="/sign")
        with pytest.raises(Exception, match="[Qq]ueue is full"):
            refused.result(timeout=30)
        release.set()
        for job in (running, waiting):  # both still answered, with the service's message
            with pytest.raises(Exception, match="error: released"):
                job.result(timeout=60)
    finally:
        release.set()
        demo.close()


def test_a_stage1_checkpoint_given_as_ckpt_is_a_one_line_error(run, tmp_path):
    with pytest.raises(GenerateError, match="not a stage-2 .*checkpoint"):
        SignService(run["stage1"], tmp_path / "files")


def test_the_stream_hands_over_the_animation_before_the_downloads(service):
    service.clear_cache()
    stream = service.sign_stream("Paul fängt den Fisch.", "dgs", SignSettings(max_codes=3, compare=True))
    early = next(stream)
    assert not early.complete and early.gif.is_file() and early.files == {} and early.comparison_gif is None
    assert not any(early.gif.parent.glob("*.npz"))  # the downloads are not written yet
    assert "writing the downloads" in serve.describe(early)
    final = next(stream)
    assert final.complete and set(final.files) == {"npz", "pose", "bvh"} and final.comparison_gif.is_file()
    assert final.gif == early.gif and final.latency_s >= early.latency_s
    assert next(stream, None) is None
    assert [r.cached for r in service.sign_stream("Paul fängt den Fisch.", "dgs",
                                                  SignSettings(max_codes=3, compare=True))] == [True]


def test_a_stream_closed_early_leaves_no_files_and_frees_the_model(service):
    service.clear_cache()
    stream = service.sign_stream("They read ten maps.", "asl", SignSettings(max_codes=2))
    folder = next(stream).gif.parent
    stream.close()  # the visitor went away
    assert not folder.exists() and service.cache_info()["size"] == 0
    assert service.sign("They read ten maps.", "asl", SignSettings(max_codes=2)).complete  # the lock was released
