"""scripts/stage2_report.py: the stage-2 test table beside the baselines, and the SLRTP protocol table below it
(model from the test metrics; ground truth, mean pose and dictionary from the baselines file)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("stage2_report", ROOT / "scripts" / "stage2_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_the_slrtp_table_beside_the_dtw_table(tmp_path, capsys):
    script = load_script()
    langs, parts, metrics = ("asl", "csl", "dgs"), ("body", "lhand", "rhand"), ("dtw_jpe", "dtw_pa_jpe")
    values = {f"test/{m}/{lang}/{p}": 1.0 for lang in langs for p in parts for m in metrics}
    for lang, mje in (("asl", 0.06), ("csl", 0.05), ("dgs", 0.07), ("all", 0.06)):
        values.update({f"test/slrtp_dtw_mje/{lang}": mje, f"test/wrist_distance_ratio/{lang}": 0.5,
                       f"test/duration_ratio/{lang}": 1.1})
    values["test/steps_per_sample"] = 40.0
    (tmp_path / "metrics.csv").write_text("epoch,step," + ",".join(values) + "\n0,0,"
                                          + ",".join(str(v) for v in values.values()) + "\n")
    dtw = {lang: {p: {m: 2.0 for m in metrics} for p in parts} for lang in langs}
    row = {"slrtp_dtw_mje": 0.0, "wrist_distance_ratio": 1.0, "duration_ratio": 1.0}
    slrtp = {"ground_truth": {lang: row for lang in (*langs, "all")},
             "mean_pose": {lang: {**row, "slrtp_dtw_mje": 0.19, "wrist_distance_ratio": 0.0} for lang in langs},
             "dictionary": {"all": {**row, "slrtp_dtw_mje": 0.08}}}
    (tmp_path / "baselines.json").write_text(json.dumps({"mean_pose": dtw, "dictionary": dtw, "slrtp": slrtp}))
    out = tmp_path / "report.json"
    assert script.main(["--store", str(tmp_path), "--metrics", str(tmp_path / "metrics.csv"),
                        "--baselines", str(tmp_path / "baselines.json"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model better than mean pose in 18/18" in printed
    table = printed[printed.index("SLRTP protocol"):]
    assert "model         all" in table and "0.0600" in table and "mean_pose     dgs" in table
    assert "slrtp_dtw_mje" not in printed[:printed.index("SLRTP protocol")]  # not in the loose extras line
    result = json.loads(out.read_text())
    assert result["slrtp"]["model"]["csl"] == {"slrtp_dtw_mje": 0.05, "wrist_distance_ratio": 0.5,
                                               "duration_ratio": 1.1}
    assert list(result["slrtp"]) == ["model", "ground_truth", "mean_pose", "dictionary"]
