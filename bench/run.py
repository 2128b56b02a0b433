"""Run every benchmark in bench/ (modules named bench_*.py with a ``main(argv) -> dict``) and print JSON.

Each benchmark compares against a baseline measured in the same run and reports ratios. Results are printed
and written to bench/results/<name>.json. `python bench/run.py loading dtw` runs only those.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    wanted = set(argv)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        start = time.perf_counter()
        result = _load(path).main([])
        result = {
            "benchmark": name,
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "wall_s": round(time.perf_counter() - start, 2),
            **result,
        }
        text = json.dumps(result, indent=2)
        print(text, flush=True)
        (out_dir / f"{name}.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "src"))
    sys.exit(main(sys.argv[1:]))
