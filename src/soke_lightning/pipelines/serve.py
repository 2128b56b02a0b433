"""Load once, sign many: the model service behind `soke serve` (the web page itself is in ``cli/serve.py``).

:class:`SignService` loads a stage-2 checkpoint (and optionally a sign dictionary for retrieval and a store whose
``dictionary`` split feeds the dictionary-concatenation baseline) once, then turns (sentence, language,
:class:`SignSettings`) into a :class:`SignResult`: the skeleton animation (GIF, front view with hand insets, as
`soke render` draws it), the SMPL-X ``.npz``, ``.pose`` and ``.bvh`` downloads, what retrieval put into the prompt,
the prompt length, decoder steps and latency. Generation runs under :func:`torch.inference_mode` behind a lock (one
model, one request at a time; :meth:`SignService.sign_stream` hands the animation over before the downloads are
written), and the last ``cache_size`` results are kept: the same sentence with the same settings
is answered from the cache without running the model. Bad input raises :class:`GenerateError` with the same one-line
message `soke generate` prints.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from soke_lightning.callbacks.prediction_writer import PredictionWriter
from soke_lightning.core.io import safe_stem
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.core.types import DEFAULT_FPS, MotionPrediction, Request
from soke_lightning.data.store import open_store
from soke_lightning.pipelines.baselines import concatenate_signs, dictionary_matcher
from soke_lightning.pipelines.generate import (
    GenerateError,
    check_lang,
    check_lengths,
    check_text,
    load_dictionary,
    prompt_settings,
    retrieval_prompt,
)
from soke_lightning.render.animation import render_animation
from soke_lightning.training.lm_stage import ContractError, LMStage

log = logging.getLogger(__name__)

#: Files written per request, in the order they are offered for download (the GIF is shown in the page).
DOWNLOADS = ("npz", "pose", "bvh")
#: Longest sentence accepted, in characters (checked before tokenising; the model's own token limit still applies).
MAX_CHARS = 1000
#: Example sentences per language when no store is given (SynthSign grammar and vocabulary, which the demo model
#: was trained on).
BUILTIN_EXAMPLES: dict[str, tuple[str, ...]] = {
    "asl": ("The teacher is happy.", "On Monday the elephant will fall.", "What will they have next year?"),
    "csl": ("妻子读报纸吗？", "星期一我会旅行到德累斯顿。", "岛很坏。"),
    "dgs": ("Der Onkel fängt den Fisch.", "Wie viele Regale sehen wir?", "Wer wird nächstes Jahr den Ball werfen?"),
}


@dataclass(frozen=True)
class SignSettings:
    """How one request is decoded (part of the cache key).

    Attributes:
        sample: sample instead of greedy decoding.
        temperature: sampling temperature (> 0).
        top_k: keep the k most likely codes per head when sampling (0: all).
        top_p: nucleus threshold per head when sampling, in (0, 1] (1: off).
        seed: random seed of sampling (the same seed gives the same motion).
        retrieval: put the dictionary's signs for the sentence's words into the prompt (needs a dictionary).
        compare: also render the dictionary-concatenation baseline next to the model (needs a baseline store).
        max_codes: maximum code steps (x4 frames); None: the checkpoint's setting.
    """

    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    retrieval: bool = True
    compare: bool = False
    max_codes: int | None = None

    def __post_init__(self):
        if not self.temperature > 0:
            raise GenerateError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise GenerateError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise GenerateError(f"top-k must be >= 0 (0: all codes), got {self.top_k}")
        if self.max_codes is not None and self.max_codes < 1:
            raise GenerateError(f"max codes must be >= 1, got {self.max_codes}")


@dataclass(frozen=True)
class RetrievedSign:
    """One dictionary entry retrieval put into the prompt: the word, how the text matched it, its code steps."""

    word: str
    via: str
    codes: int
    total_codes: int


@dataclass(frozen=True)
class SignResult:
    """What one request produced.

    Attributes:
        text, lang: the (stripped) sentence and its sign-language key.
        gif: the skeleton animation; files: format ("npz", "pose", "bvh") -> path of the download.
        retrieved: the dictionary entries in the prompt, in prompt order (empty without retrieval).
        prompt: the encoder prompt; prompt_tokens: its length in the model's text tokens.
        code_steps: time codes generated; decoder_passes: decoder forward passes; finished: stopped on </s>
            (False: it ran into max_codes).
        frames, fps: length and rate of the motion.
        latency_s: seconds the request took when it was generated (model, decoding and files; for an incomplete
            result: until the animation was written).
        comparison_gif: model | dictionary concatenation side by side (None unless asked and available).
        baseline_words: the dictionary words the baseline concatenated, in text order.
        cached: True when this answer came from the cache.
        complete: False for the early result of :meth:`SignService.sign_stream` (animation only).
    """

    text: str
    lang: str
    gif: Path
    files: dict[str, Path]
    retrieved: tuple[RetrievedSign, ...]
    prompt: str
    prompt_tokens: int
    code_steps: int
    decoder_passes: int
    finished: bool
    frames: int
    fps: float
    latency_s: float
    comparison_gif: Path | None = None
    baseline_words: tuple[str, ...] = ()
    cached: bool = False
    complete: bool = True


class SignService:
    """A loaded stage-2 model that signs sentences, with a small LRU cache of results.

    Args:
        ckpt: stage-2 checkpoint (LMStage).
        out_dir: folder for the generated files (one sub-folder per cached result; evicted results are deleted).
        tokenizer_ckpt: stage-1 checkpoint instead of the path stored in the stage-2 checkpoint (same hash).
        dictionary: sign dictionary (`soke dict build`) for retrieval-augmented prompts, or None.
        baseline_store: packed store with a ``dictionary`` split for the dictionary-concatenation baseline, or None.
            Its test split (else its first split) also gives the example sentences.
        device: torch device.
        cache_size: results kept (>= 1).
        retrieval: retrieval prompt settings overriding the checkpoint's own recipe (``top_k``, ``order``,
            ``separator``, ...; see :func:`~soke_lightning.pipelines.generate.prompt_settings`).
        gif_height: pixel height of the animation.
        fps: frame rate of the generated motion.
    """

    def __init__(self, ckpt: str | Path, out_dir: str | Path, *, tokenizer_ckpt: str | None = None,
                 dictionary: str | Path | None = None, baseline_store: str | Path | None = None,
                 device: str | torch.device = "cpu", cache_size: int = 16, retrieval: dict | None = None,
                 gif_height: int = 300,
                 fps: float = DEFAULT_FPS):
        if cache_size < 1:
            raise GenerateError(f"--cache-size must be >= 1, got {cache_size}")
        if not Path(ckpt).is_file():
            raise GenerateError(f"--ckpt {ckpt} does not exist; train one with `make train-stage2` (it writes "
                                f"outputs/stage2-demo/checkpoints/last.ckpt)")
        try:
            self.stage = LMStage.from_checkpoint(ckpt, tokenizer_ckpt=tokenizer_ckpt).to(device)
        except KeyError as err:  # not a stage-2 checkpoint (the message names the file and the fix)
            raise GenerateError(f"--ckpt {err.args[0]}") from None
        except (FileNotFoundError, ContractError) as err:  # its stage-1 checkpoint moved or changed
            raise GenerateError(f"--ckpt {ckpt}: {err}") from None
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.languages = [key for key, lang in LANGUAGES.items() if lang.sign_tag in self.stage.lm.sign_tags]
        self.dictionary = load_dictionary(self.stage, dictionary) if dictionary is not None else None
        self.retrieval = prompt_settings(self.stage, ckpt, **(retrieval or {})) if self.dictionary is not None else {}
        self.backend_name = self.stage.hparams.joint_backend
        self.formats = [f for f in DOWNLOADS if f != "bvh" or self.backend_name == "builtin"]
        self.gif_height = gif_height
        self.fps = fps
        self.cache_size = cache_size
        self._baseline = self._open_baseline(baseline_store) if baseline_store is not None else None
        self.examples = self._examples(baseline_store)
        self._cache: OrderedDict[tuple, SignResult] = OrderedDict()
        self._lock = threading.Lock()
        self._frames_cache: dict = {}

    @property
    def has_dictionary(self) -> bool:
        return self.dictionary is not None

    @property
    def has_baseline(self) -> bool:
        return self._baseline is not None

    @staticmethod
    def _open_baseline(path: str | Path):
        try:
            store = open_store(path)
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise GenerateError(f"--store {path}: {err}") from None
        if "dictionary" not in store:
            raise GenerateError(f"--store {path} has no 'dictionary' split (it has {list(store.splits)}); the "
                                f"baseline needs one: use a SynthSign store (`soke synth`)")
        split = store.split("dictionary")
        return (split, *dictionary_matcher(split))

    def _examples(self, store: str | Path | None) -> dict[str, list[str]]:
        """Three example sentences per language of the model: from the store's test split, else built in."""
        out = {lang: list(BUILTIN_EXAMPLES.get(lang, ())) for lang in self.languages}
        if store is None:
            return out
        opened = open_store(store)
        split = opened.split("test" if "test" in opened else opened.splits[0])
        for lang in self.languages:
            texts = [r["text"] for r in split.records if r["lang"] == lang][:3]
            out[lang] = texts or out[lang]
        return out

    def check(self, text: str | None, lang: str | None) -> tuple[str, str]:
        """The stripped text and the language key, or the :class:`GenerateError` `soke generate` would give."""
        text = check_text(text, "text")
        if len(text) > MAX_CHARS:
            raise GenerateError(f"text: the text is too long: {len(text)} characters, at most {MAX_CHARS}; split it "
                                f"into shorter sentences")
        lang = check_lang(lang)
        if lang not in self.languages:
            raise GenerateError(f"text: this model does not generate {lang} ({LANGUAGES[lang].sign_tag}); it knows "
                                f"{', '.join(self.languages)}")
        return text, lang

    def sign(self, text: str | None, lang: str | None, settings: SignSettings = SignSettings()) -> SignResult:
        """Sign one sentence (from the cache when the same sentence and settings were asked for recently).

        Raises:
            GenerateError: empty or over-long text, a language the checkpoint lacks, or a comparison asked for
                without a baseline store.
        """
        *_, result = self.sign_stream(text, lang, settings)
        return result

    def sign_stream(self, text: str | None, lang: str | None, settings: SignSettings = SignSettings()
                    ) -> Iterator[SignResult]:
        """Like :meth:`sign`, but first yields a result as soon as its animation is written (``complete`` False, no
        downloads or comparison yet), then the complete result. A cached answer is yielded once.

        Bad input raises :class:`GenerateError` before anything is yielded.
        """
        text, lang = self.check(text, lang)
        if settings.retrieval and not self.has_dictionary:
            settings = replace(settings, retrieval=False)  # nothing to retrieve from: the key says so
        if settings.compare and not self.has_baseline:
            raise GenerateError("the dictionary-concatenation comparison needs a store with a 'dictionary' split: "
                                "start the server with --store STORE")
        return self._stream(text, lang, settings)

    def _stream(self, text: str, lang: str, settings: SignSettings) -> Iterator[SignResult]:
        key = (text, lang, settings)
        with self._lock:  # released when the stream ends or is closed (a client that went away)
            if key in self._cache:
                self._cache.move_to_end(key)
                yield replace(self._cache[key], cached=True)
                return
            folder = self.out_dir / hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:16]
            try:
                result = None
                for result in self._sign(text, lang, settings, folder):
                    if not result.complete:
                        yield result
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # never leave half a request's files behind
                raise
            self._cache[key] = result
            while len(self._cache) > self.cache_size:
                _, old = self._cache.popitem(last=False)
                shutil.rmtree(old.gif.parent, ignore_errors=True)
            yield result

    def _sign(self, text: str, lang: str, settings: SignSettings, folder: Path) -> Iterator[SignResult]:
        start = time.perf_counter()
        # Download names read like the sentence ("asl_The_teacher_is_happy.npz"); the folder keeps requests apart.
        words = re.sub(r"\W+", "_", text).strip("_")[:40]
        request = Request(name=f"{lang}_{words}", text=text, lang=lang, fps=self.fps)
        entries = []
        prompt = text
        if settings.retrieval:
            prompt, entries = retrieval_prompt(self.stage, request, self.dictionary, **self.retrieval)
        check_lengths(self.stage, [request], [prompt])
        overrides = {"do_sample": settings.sample, "temperature": settings.temperature, "top_k": settings.top_k,
                     "top_p": settings.top_p}
        if settings.max_codes is not None:
            overrides["max_codes"] = settings.max_codes
        if settings.sample:
            overrides["generator"] = torch.Generator(device=self.stage.device).manual_seed(int(settings.seed))
        with torch.inference_mode():
            feats, lengths, result = self.stage.generate([prompt], [lang], texts=[text], **overrides)
            passes = int(self.stage.lm.decoder_passes(result)[0])
        prediction = MotionPrediction(name=request.name, text=text, lang=lang, raw=feats[0, : int(lengths[0])],
                                      fps=self.fps)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        gif = self._writer(folder, ["gif"]).write(prediction)[0]
        partial = SignResult(
            text=text, lang=lang, gif=gif, files={},
            retrieved=tuple(RetrievedSign(e.word, e.match.via, int(len(e.codes)), int(e.total_codes))
                            for e in entries),
            prompt=prompt, prompt_tokens=int(self.stage.text_tokenizer.count_tokens(prompt)),
            code_steps=int(result.lengths[0]), decoder_passes=passes, finished=bool(result.finished[0]),
            frames=int(prediction.raw.shape[0]), fps=self.fps, latency_s=time.perf_counter() - start,
            complete=False)
        yield partial
        writer = self._writer(folder, self.formats)
        files = dict(zip(self.formats, writer.write(prediction)))
        comparison, baseline_words = None, ()
        if settings.compare:
            comparison, baseline_words = self._compare(folder, prediction, writer.backend)
        latency = time.perf_counter() - start
        log.info("signed %r (%s) in %.2f s: %d code steps, retrieved %s", text, lang, latency, partial.code_steps,
                 [e.word for e in entries] or "nothing")
        yield replace(partial, files=files, comparison_gif=comparison, baseline_words=baseline_words,
                      latency_s=latency, complete=True)

    def _writer(self, folder: Path, formats: list[str]) -> PredictionWriter:
        return PredictionWriter(folder, formats=formats, backend=self.backend_name, gif_height=self.gif_height)

    def _compare(self, folder: Path, prediction: MotionPrediction, backend) -> tuple[Path, tuple[str, ...]]:
        """Model | dictionary concatenation side by side as one GIF; and the dictionary words concatenated."""
        split, matcher, first = self._baseline
        baseline, matched = concatenate_signs(prediction.text, prediction.lang, split, matcher, first,
                                              self._frames_cache)
        with torch.no_grad():
            sequences = [backend(torch.from_numpy(x)).numpy() for x in (prediction.raw, baseline)]
        path = folder / f"{safe_stem(prediction.name)}.compare.gif"
        partial = folder / f".{path.name}.partial.gif"
        render_animation(sequences, backend.bones, partial, titles=["model", "dictionary concatenation"],
                         caption=f"[{prediction.lang}] {prediction.text}", fps=prediction.fps,
                         joint_sets=backend.joint_sets, height=self.gif_height)
        os.replace(partial, path)
        return path, tuple(r["text"] for r in matched)

    def clear_cache(self) -> None:
        """Forget every cached result and delete its files."""
        with self._lock:
            for result in self._cache.values():
                shutil.rmtree(result.gif.parent, ignore_errors=True)
            self._cache.clear()

    def cache_info(self) -> dict[str, int]:
        """Results held and the cache's capacity."""
        return {"size": len(self._cache), "capacity": self.cache_size}
