"""`soke serve`: a local web page: type a sentence, pick a sign language, watch it signed.

    soke serve --ckpt outputs/stage2-demo/checkpoints/last.ckpt                        (http://127.0.0.1:7860)
    soke serve --ckpt CKPT --dictionary outputs/dict-demo.json --store data/synthsign-demo --port 8000

The page (Gradio; `pip install -e ".[serve]"` or `make serve`) has a text box, the checkpoint's sign languages,
retrieval on/off (with ``--dictionary``), decoding settings (greedy or sampling with temperature, top-k, top-p and a
seed), example sentences per language and, with ``--store`` (a store with a ``dictionary`` split, e.g. SynthSign),
the dictionary-concatenation baseline side by side. It shows the skeleton animation (front view with hand insets,
as `soke render` draws it) as soon as it is drawn, what retrieval injected, the prompt length, decoder steps and latency, and offers the
SMPL-X ``.npz``, ``.pose`` and ``.bvh`` for download. Bad input shows the one-line message `soke generate` gives.

The model is loaded once; requests run one at a time through a bounded queue (``--queue-size``; further requests
are refused with "queue full" instead of piling up in memory), and the last ``--cache-size`` results are answered
from a cache. Nothing is fetched from the network: analytics are off and the page uses system fonts. The same
endpoint is callable from Python with ``gradio_client`` (``Client(url).predict(..., api_name="/sign")``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from soke_lightning.cli.generate import add_retrieval_arguments, retrieval_overrides
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.pipelines.generate import GenerateError
from soke_lightning.pipelines.serve import SignResult, SignService, SignSettings

log = logging.getLogger(__name__)

#: Environment that keeps Gradio off the network (set before it is imported).
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
DECODING = ("greedy", "sampling")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="stage-2 checkpoint (LMStage .ckpt), e.g. "
                        "outputs/stage2-demo/checkpoints/last.ckpt (`make train-stage2` writes it)")
    parser.add_argument("--tokenizer", default=None, help="stage-1 checkpoint instead of the path stored in the "
                        "stage-2 checkpoint (its hash must match)")
    parser.add_argument("--dictionary", default=None, help="sign dictionary (`soke dict build`): offers retrieval-"
                        "augmented prompts (use it for a model trained with the RetrievalCallback)")
    parser.add_argument("--store", default=None, help="a packed store with a 'dictionary' split (e.g. "
                        "data/synthsign-demo): offers the dictionary-concatenation baseline side by side and takes "
                        "its test sentences as examples")
    add_retrieval_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                        "only; 0.0.0.0 to let others on the network in)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests waiting at most; more are refused "
                        "(default 16)")
    parser.add_argument("--cache-size", type=int, default=32, help="results kept for repeated requests (default 32)")
    parser.add_argument("--out", default=None, help="folder for generated files (default: a temporary folder)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def settings_from_inputs(retrieval: bool, compare: bool, decoding: str, temperature: float, top_k: float,
                         top_p: float, seed: float) -> SignSettings:
    """The page's decoding widgets -> :class:`SignSettings` (a :class:`GenerateError` for values out of range)."""
    if decoding not in DECODING:
        raise GenerateError(f"decoding must be one of {', '.join(DECODING)}, got {decoding!r}")
    return SignSettings(sample=decoding == "sampling", temperature=float(temperature), top_k=int(top_k or 0),
                        top_p=float(top_p), seed=int(seed or 0), retrieval=bool(retrieval), compare=bool(compare))


def describe(result: SignResult) -> str:
    """Markdown shown under the animation: prompt, retrieval, decoder steps, latency."""
    lines = [f"**{LANGUAGES[result.lang].sign_language}** · {result.frames} frames at {result.fps:g} fps · "
             f"{result.code_steps} code steps, {result.decoder_passes} decoder passes"
             f"{'' if result.finished else ' (hit max codes)'} · "
             f"{'cached answer' if result.cached else f'{result.latency_s:.2f} s'}"
             f"{'' if result.complete else ' · writing the downloads…'}",
             "", f"Prompt: {result.prompt_tokens} tokens."]
    if result.retrieved:
        lines += ["", "| retrieved word | matched as | code steps in prompt |", "|---|---|---|"]
        lines += [f"| {r.word} | {r.via} | {r.codes} of {r.total_codes} |" for r in result.retrieved]
    else:
        lines += ["", "Retrieval: nothing injected."]
    if result.comparison_gif is not None:
        words = ", ".join(result.baseline_words) or "none (rest pose)"
        lines += ["", f"Dictionary concatenation used: {words}."]
    return "\n".join(lines)


def build_app(service: SignService, queue_size: int = 16):
    """The Gradio Blocks page around ``service`` (queued: one request at a time, at most ``queue_size`` waiting)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import gradio as gr

    choices = [(f"{LANGUAGES[k].sign_language} ({k})", k) for k in service.languages]

    def sign(text, lang, retrieval, compare, decoding, temperature, top_k, top_p, seed):
        # A generator: the animation is shown as soon as it is written, the downloads (and comparison) follow.
        try:
            settings = settings_from_inputs(retrieval, compare, decoding, temperature, top_k, top_p, seed)
            for result in service.sign_stream(text, lang, settings):
                compare_update = gr.update(value=str(result.comparison_gif) if result.comparison_gif else None,
                                           visible=result.comparison_gif is not None)
                yield (str(result.gif), compare_update, describe(result),
                       [str(path) for path in result.files.values()] or None)
        except GenerateError as err:
            # The same one-line message as the CLI, shown in the page; the server keeps serving.
            raise gr.Error(f"error: {err}", duration=None, print_exception=False) from None

    with gr.Blocks(title="soke serve: text to sign language", analytics_enabled=False) as demo:
        gr.Markdown("## Text to sign language\nType a sentence, pick a sign language and press **Sign**.")
        with gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox(label="Sentence", lines=2, elem_id="soke-text",
                                  placeholder=(service.examples.get(service.languages[0]) or [""])[0])
                lang = gr.Radio(choices, value=service.languages[0], label="Sign language", elem_id="soke-lang")
                retrieval = gr.Checkbox(value=service.has_dictionary, label="Retrieval: put dictionary signs of "
                                        "the sentence's words into the prompt", visible=service.has_dictionary,
                                        elem_id="soke-retrieval")
                compare = gr.Checkbox(value=False, label="Compare with dictionary concatenation",
                                      visible=service.has_baseline, elem_id="soke-compare")
                with gr.Accordion("Decoding", open=False):
                    decoding = gr.Radio(list(DECODING), value="greedy", label="Decoding", elem_id="soke-decoding")
                    temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature (sampling)")
                    top_k = gr.Slider(0, 512, value=0, step=1, label="Top-k (sampling; 0: all codes)")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (sampling; 1: off)")
                    seed = gr.Number(value=0, precision=0, label="Seed (sampling)")
                button = gr.Button("Sign", variant="primary", elem_id="soke-generate")
                gr.Examples([[t, k] for k in service.languages for t in service.examples.get(k, [])],
                            inputs=[text, lang], label="Examples")
            with gr.Column(scale=2):
                animation = gr.Image(label="Signed (front view, hand insets)", type="filepath", interactive=False,
                                     elem_id="soke-animation")
                comparison = gr.Image(label="Model | dictionary concatenation", type="filepath", interactive=False,
                                      visible=False, show_label=False, elem_id="soke-comparison")
                info = gr.Markdown(elem_id="soke-info")
                files = gr.File(label="Downloads: SMPL-X .npz, .pose, .bvh", file_count="multiple",
                                interactive=False, elem_id="soke-downloads")
        inputs = [text, lang, retrieval, compare, decoding, temperature, top_k, top_p, seed]
        outputs = [animation, comparison, info, files]
        # One concurrency group for both triggers: one generation at a time, whichever way it was asked for.
        button.click(sign, inputs, outputs, api_name="sign", concurrency_id="model")
        text.submit(sign, inputs, outputs, api_name=False, concurrency_id="model")
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo


def theme():
    """Gradio's default look with system fonts (the default theme would fetch web fonts)."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def launch(demo, service: SignService, host: str, port: int, *, block: bool = True):
    """Start the server (``block=False``: return once it listens; the caller closes it with ``demo.close()``)."""
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
                       allowed_paths=[str(service.out_dir)], theme=theme(), ssr_mode=False, quiet=not block,
                       footer_links=["api"])


def make_service(args: argparse.Namespace) -> SignService:
    import torch

    out = args.out or tempfile.mkdtemp(prefix="soke-serve-")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return SignService(args.ckpt, out, tokenizer_ckpt=args.tokenizer, dictionary=args.dictionary,
                       baseline_store=args.store, device=device, cache_size=args.cache_size,
                       retrieval=retrieval_overrides(args))


def run(args: argparse.Namespace) -> int:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("soke serve: error: the web demo needs Gradio: pip install -e \".[serve]\" (or `make serve`)",
              file=sys.stderr)
        return 2
    if args.queue_size < 1:
        print(f"soke serve: error: --queue-size must be >= 1, got {args.queue_size}", file=sys.stderr)
        return 2
    try:
        service = make_service(args)
    except GenerateError as err:
        print(f"soke serve: error: {err}", file=sys.stderr)
        return 2
    log.info("serving %s (%s) on http://%s:%d; files in %s", Path(args.ckpt), ", ".join(service.languages),
             args.host, args.port, service.out_dir)
    launch(build_app(service, args.queue_size), service, args.host, args.port)
    return 0
