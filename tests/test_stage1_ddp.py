"""2-process gloo run: quantizer state stays identical on both ranks (subprocess script: DDP under pytest would re-run pytest in rank 1)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "ddp_stage1.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
def test_two_gloo_ranks_keep_identical_codebooks():
    proc = subprocess.run([sys.executable, str(SCRIPT), str(_free_port())], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ddp_stage1: OK" in proc.stdout
