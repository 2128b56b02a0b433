"""Render a run's evaluation report as ONE self-contained HTML page (plots as PNG and animations as GIF data URIs).

Input: the :data:`INPUTS_FILE` contract (``RUN_DIR/report_inputs.json``, written by ``soke report --collect`` or
by any stage that wants a report), a JSON object with these keys, every one optional except ``format``:

* ``format``: ``"soke-report-inputs/1"``.
* ``title``: page title; ``run_dir``: the run folder (shown).
* ``metrics``: ``{"source": file, "values": {logged key: value}}`` — a stage's test metrics as logged
  (``test/asl/mpjpe_pa_hand``, ``test/dtw_pa_jpe/csl/lhand``, ``test/asl/bleu4``, ...); shown as one table per
  metric family, rows = languages, columns = metric x part.
* ``comparison``: ``{system: {lang: {part: {metric: value}}}}`` — DTW errors of the model next to the baselines
  (``soke baselines --json`` has this shape for ``mean_pose`` and ``dictionary``); lower is better.
* ``backtranslation``: the ``sources`` of ``soke backtranslate --json`` (``{source: {lang: {bleu1..4, rouge_l,
  chrf, wer}}}``; WER is the one lower-is-better column).
* ``slrtp``: ``{system: {lang: {slrtp_dtw_mje, wrist_distance_ratio, duration_ratio}}}`` — the SLRTP 2025 protocol
  of the model, the ground truth, the mean pose and the dictionary concatenation (``all`` pooled).
* ``codebooks``: ``{part: [count per code]}`` (EMA counts of the quantizers, or code histograms).
* ``errors``: ``{"metric": description, "systems": {system: [{"name", "lang", "text", "error"}]}}`` — per-sample
  errors, drawn as distributions per language.
* ``samples``: ``[{"label", "name", "lang", "text", "error", "gif"}]`` — best / median / worst samples; ``gif`` is a
  path (relative to the inputs file) of an animation of generated vs ground-truth motion.

Every image is read and embedded; the page references no other file, script or stylesheet.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from soke_lightning.core.languages import LANGUAGES
from soke_lightning.metrics.slrtp import SLRTP_SCORES

INPUTS_FILE = "report_inputs.json"
INPUTS_FORMAT = "soke-report-inputs/1"
#: Tokens of a logged key that name a language group or a part (the rest names the metric).
_PARTS = ("body", "lhand", "rhand", "hand", "avg")

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.muted{color:#777;font-size:13px}
.best{background:#e6f4e6}.grid{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0 0 16px 0}figcaption{font-size:13px;max-width:640px}
img{max-width:100%;border:1px solid #eee}
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def _table(header: list[str], rows: list[list], left: int = 1, highlight: Mapping[int, str] | None = None) -> str:
    """HTML table; the first ``left`` columns are labels; ``highlight`` {column: "min"|"max"} marks the best cell."""
    best: dict[int, float] = {}
    for col, mode in (highlight or {}).items():
        vals = [r[col] for r in rows if isinstance(r[col], (int, float)) and not math.isnan(r[col])]
        if vals:
            best[col] = min(vals) if mode == "min" else max(vals)
    out = ["<table><tr>" + "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
                                   for i, h in enumerate(header)) + "</tr>"]
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            if i < left:
                cells.append(f'<td class="l">{html.escape(str(v))}</td>')
            else:
                cls = ' class="best"' if i in best and v == best[i] else ""
                cells.append(f"<td{cls}>{_fmt(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def parse_metric_key(key: str, languages: list[str]) -> tuple[str, str, str] | None:
    """``test/dtw_pa_jpe/asl/lhand`` -> (lang, metric, part); ``test/asl/mpjpe_body`` -> ("asl", "mpjpe_body", "");
    ``test/body/usage`` -> ("all", "usage", "body"); keys outside ``test/``/``val/`` -> None."""
    tokens = key.split("/")
    if len(tokens) < 2 or tokens[0] not in ("test", "val"):
        return None
    lang, part, metric = "all", "", []
    for t in tokens[1:]:
        if t in languages or t == "all":
            lang = t
        elif t in _PARTS:
            part = t
        else:
            metric.append(t)
    return lang, "/".join(metric) or "value", part


def metric_tables(values: Mapping[str, float], languages: list[str]) -> str:
    """One table per metric family (the metric's first word: mpjpe, dtw, bleu, usage...): rows languages."""
    families: dict[str, dict[tuple[str, str], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in values.items():
        parsed = parse_metric_key(key, languages)
        if parsed is None:
            continue
        lang, metric, part = parsed
        family = "SLRTP protocol" if metric in SLRTP_SCORES else metric.split("_")[0]
        families[family][(metric, part)][lang] = float(value)
    out = []
    order = ["all", *languages]
    for family, columns in sorted(families.items()):
        cols = sorted(columns)
        langs = [g for g in order if any(g in columns[c] for c in cols)]
        header = ["language"] + [f"{m} {p}".strip() for m, p in cols]
        rows = [[g] + [columns[c].get(g, float("nan")) for c in cols] for g in langs]
        out.append(f"<h3>{html.escape(family)}</h3>" + _table(header, rows))
    return "".join(out)


def comparison_table(comparison: Mapping[str, Mapping], lower_is_better: bool = True,
                     modes: Mapping[str, str | None] | None = None) -> str:
    """Rows (language, system), columns metric x part; the best system per language and column is marked
    (``modes``: metric -> "min", "max" or None (no mark), overriding ``lower_is_better``)."""
    systems = list(comparison)
    langs = sorted({lang for s in systems for lang in comparison[s]})
    cols = sorted({(m, p) for s in systems for parts in comparison[s].values() for p, ms in parts.items() for m in ms})
    header = ["language", "system"] + [f"{m} {p}" for m, p in cols]
    out = []
    for lang in langs:
        rows = [[lang, s] + [comparison[s].get(lang, {}).get(p, {}).get(m, float("nan")) for m, p in cols]
                for s in systems if lang in comparison[s]]
        mode = "min" if lower_is_better else "max"
        marks = {i + 2: (modes or {}).get(m, mode) for i, (m, _) in enumerate(cols)}
        out.append(_table(header, rows, left=2, highlight={i: v for i, v in marks.items() if v is not None}))
    return "".join(out)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buf.getvalue(), "image/png")


def codebook_figure(codebooks: Mapping[str, list[float]]) -> str:
    """Bar chart per part of the code counts, sorted by frequency, with usage and perplexity in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(codebooks), figsize=(4.2 * len(codebooks), 2.8), squeeze=False)
    for ax, (part, counts) in zip(axes[0], codebooks.items()):
        c = np.asarray(counts, dtype=np.float64)
        p = c / c.sum() if c.sum() > 0 else c
        nz = p[p > 0]
        perplexity = float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0
        ax.bar(np.arange(len(c)), np.sort(p)[::-1], width=1.0, color="#3b75af")
        ax.set_title(f"{part}: {int((c > 0).sum())}/{len(c)} codes used, perplexity {perplexity:.1f}", fontsize=9)
        ax.set_xlabel("code (sorted by frequency)", fontsize=8)
        ax.set_ylabel("share", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def error_figure(systems: Mapping[str, list[dict]], metric: str) -> str:
    """Histograms of per-sample errors per language (one panel each), one colour per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = sorted({r["lang"] for rs in systems.values() for r in rs})
    fig, axes = plt.subplots(1, max(1, len(langs)), figsize=(4.2 * max(1, len(langs)), 2.8), squeeze=False)
    all_errors = [r["error"] for rs in systems.values() for r in rs]
    bins = np.linspace(min(all_errors), max(all_errors), 30) if all_errors else 10
    for ax, lang in zip(axes[0], langs):
        for name, rs in systems.items():
            e = [r["error"] for r in rs if r["lang"] == lang]
            if e:
                ax.hist(e, bins=bins, alpha=0.55, label=f"{name} (median {np.median(e):.2f})")
        ax.set_title(lang, fontsize=9)
        ax.set_xlabel(metric, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def render_html(inputs: Mapping, base_dir: str | Path = ".") -> str:
    """The report page of ``inputs`` (the :data:`INPUTS_FILE` contract); relative GIF paths from ``base_dir``."""
    if inputs.get("format") != INPUTS_FORMAT:
        raise ValueError(f"report inputs: format is {inputs.get('format')!r}, expected {INPUTS_FORMAT!r}; write them "
                         f"with `soke report RUN_DIR --collect ...`")
    base_dir = Path(base_dir)
    languages = list(LANGUAGES)
    title = inputs.get("title") or "soke-lightning evaluation report"
    body = [f"<h1>{html.escape(title)}</h1>"]
    if inputs.get("run_dir"):
        body.append(f'<p class="muted">run: {html.escape(str(inputs["run_dir"]))}</p>')
    sections = []
    metrics = inputs.get("metrics")
    if metrics and metrics.get("values"):
        sections.append(("Test metrics", f'<p class="muted">from {html.escape(str(metrics.get("source", "")))}; '
                                         f"joint errors in millimetres, DTW costs in metres (accumulated over the "
                                         f"warping path), BLEU/ROUGE ×100</p>"
                         + metric_tables(metrics["values"], languages)))
    if inputs.get("comparison"):
        sections.append(("Model vs baselines (DTW, lower is better)",
                         '<p class="muted">accumulated DTW cost in metres per language × part, mean over the test '
                         "samples; best system per column in green</p>" + comparison_table(inputs["comparison"])))
    bt = inputs.get("backtranslation")
    if bt:
        sections.append(("Back-translation (sign → text, higher is better)",
                         '<p class="muted">BLEU-n and ROUGE-L ×100 of the back-translation model\'s text against the '
                         "signed sentence; Chinese on characters. ground_truth = ceiling, mean_pose = floor</p>"
                         + comparison_table({s: {lang: {"": v} for lang, v in langs.items()} for s, langs in bt.items()},
                                            lower_is_better=False, modes={"wer": "min"})))
    if inputs.get("slrtp"):
        sections.append(("SLRTP protocol",
                         '<p class="muted">the SLRTP 2025 challenge\'s motion scores: FastDTW DTW-MJE (mean per-joint '
                         "error of the aligned frames pooled over the samples, metres; lower is better), wrist "
                         "distance ratio (path length of the wrists, generated / ground truth; 1 is ideal, a "
                         "motionless pose scores 0) and duration ratio (1 is ideal); language all = pooled</p>"
                         + comparison_table({s: {lang: {"": v} for lang, v in langs.items()}
                                             for s, langs in inputs["slrtp"].items()},
                                            modes=dict.fromkeys(SLRTP_SCORES))))  # ground truth is the reference
    if inputs.get("codebooks"):
        sections.append(("Codebook usage", f'<img alt="codebook usage" src="{codebook_figure(inputs["codebooks"])}">'))
    errors = inputs.get("errors")
    if errors and errors.get("systems"):
        sections.append(("Per-sample error distributions",
                         f'<p class="muted">{html.escape(errors.get("metric", "error"))}</p>'
                         f'<img alt="error distributions" src="{error_figure(errors["systems"], "error")}">'))
    samples = inputs.get("samples") or []
    if samples:
        figures = []
        for s in samples:
            gif = Path(s["gif"])
            gif = gif if gif.is_absolute() else base_dir / gif
            if not gif.is_file():
                raise FileNotFoundError(f"report inputs: sample {s.get('name')!r} names animation {gif}, which does "
                                        f"not exist; re-run `soke report RUN_DIR --collect ...`")
            caption = (f"<b>{html.escape(s.get('label', ''))}</b> — {html.escape(s['name'])} [{html.escape(s['lang'])}]"
                       f", error {_fmt(s.get('error'))}<br>text: {html.escape(s['text'])}")
            if s.get("hypothesis") is not None:
                caption += f"<br>back-translated: {html.escape(s['hypothesis'])}"
            figures.append(f'<figure><img alt="{html.escape(s["name"])}" src="{data_uri(gif.read_bytes(), "image/gif")}">'
                           f"<figcaption>{caption}</figcaption></figure>")
        sections.append(("Best / median / worst samples (generated vs ground truth)",
                         '<div class="grid">' + "".join(figures) + "</div>"))
    if not sections:
        sections.append(("Nothing to report", "<p>the inputs hold no metrics, baselines, codebooks or samples</p>"))
    body += [f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")


def write_report(inputs_file: str | Path, out: str | Path | None = None) -> Path:
    """Render ``inputs_file`` (:data:`INPUTS_FILE`) to ``out`` (default: ``report.html`` next to it)."""
    inputs_file = Path(inputs_file)
    if not inputs_file.is_file():
        raise FileNotFoundError(f"{inputs_file} does not exist; collect it first: `soke report RUN_DIR --collect "
                                f"--store DATA` (or write it from a stage's test)")
    inputs = json.loads(inputs_file.read_text(encoding="utf-8"))
    out = Path(out) if out is not None else inputs_file.with_name("report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(inputs, inputs_file.parent), encoding="utf-8")
    tmp.replace(out)
    return out
