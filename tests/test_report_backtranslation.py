"""`soke report` with back-translation: the B-T table comes from `soke backtranslate --json` and each rendered
sample shows the back-translated sentence of the generated motion under its animation."""

from __future__ import annotations

import argparse
import json

from soke_lightning.cli import report as report_cli
from soke_lightning.report.html import INPUTS_FILE
from test_backtranslation import make_store


def test_report_shows_bt_scores_and_each_samples_back_translation(tmp_path, capsys):
    from soke_lightning.callbacks.prediction_writer import MotionPrediction, PredictionWriter
    from soke_lightning.data.store import open_store

    store = make_store(tmp_path / "store", {"train": 2, "test": 2})
    split = open_store(store).split("test")
    writer = PredictionWriter(out_dir=tmp_path / "run" / "predictions", formats=["npz"])
    writer._written, writer._skipped, writer._rank = {}, 0, 0
    writer.out_dir.mkdir(parents=True)
    samples = [split[i] for i in range(len(split))]
    writer.write([MotionPrediction(name=f"synthsign/{s.name}", text=s.text, lang=s.lang, raw=s.frames, fps=25.0)
                  for s in samples])
    scores = {lang: {"bleu1": 50.0, "bleu2": 40.0, "bleu3": 30.0, "bleu4": 20.0, "rouge_l": 45.0}
              for lang in ("asl", "csl", "dgs")}
    bt = {"sources": {"ground_truth": scores, "predictions": scores, "mean_pose": scores},
          "samples": {"predictions": [{"name": f"synthsign/{s.name}", "lang": s.lang, "text": s.text,
                                       "hypothesis": f"hyp of {s.name}"} for s in samples],
                      "ground_truth": [{"name": s.name, "lang": s.lang, "text": s.text, "hypothesis": "WRONG SOURCE"}
                                       for s in samples]}}
    (tmp_path / "bt.json").write_text(json.dumps(bt))
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "run"), "--store", str(store), "--backtranslation",
                              str(tmp_path / "bt.json")])
    assert report_cli.run(args) == 0
    inputs = json.loads((tmp_path / "run" / INPUTS_FILE).read_text())
    assert set(inputs["backtranslation"]) == {"ground_truth", "predictions", "mean_pose"}
    assert len(inputs["samples"]) == 3
    for s in inputs["samples"]:
        assert s["hypothesis"] == f"hyp of {s['name']}"
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count("back-translated: hyp of ") == 3 and "WRONG SOURCE" not in page
    assert "Back-translation" in page
