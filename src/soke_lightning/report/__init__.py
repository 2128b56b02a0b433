"""Evaluation reports: `soke report RUN_DIR` collects a run's metrics, baselines, codebook usage, per-sample errors
and best / median / worst animations into ``report_inputs.json`` and renders one self-contained HTML page."""

from soke_lightning.report.html import INPUTS_FILE, INPUTS_FORMAT, render_html, write_report

__all__ = ["INPUTS_FILE", "INPUTS_FORMAT", "render_html", "write_report"]
