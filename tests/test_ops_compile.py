"""``torch.compile`` opt-in (``LMStage(compile=True)`` through ``stages.common.compile_in_place``): the network is
compiled in place, so parameter names do not change and checkpoints move freely between compiled and uncompiled
runs (resume either way); the compiled loss equals the eager one. The default test uses dynamo's ``eager`` backend
(graph capture without code generation: seconds on CPU); the slow one the real default (inductor, C++ on CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from soke_lightning.training.common import compile_in_place
from test_stage2_retrieval_switch import _cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from test_stage2_lm import pipeline

    return pipeline(tmp_path_factory)


def _fit(run, out: Path, compiled: bool, backend: str | None, ckpt: Path | None = None, epochs: int = 1):
    flags = [f"--model.init_args.compile={compiled}", f"--trainer.max_epochs={epochs}"]
    if backend:
        flags.append(f"--model.init_args.compile_options={{backend: {backend}}}")
    cli = _cli(run, out, *flags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=None if ckpt is None else str(ckpt))
    path = out / "last.ckpt"
    cli.trainer.save_checkpoint(path)
    return cli, path


def _is_compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def _check_round_trip(run, tmp_path, backend):
    compiled, ckpt_c = _fit(run, tmp_path / "c", True, backend)
    assert _is_compiled(compiled.model.lm) and compiled.trainer.global_step == 2
    keys = set(torch.load(ckpt_c, weights_only=False)["state_dict"])
    assert not any("_orig_mod" in k for k in keys)
    # compiled checkpoint -> uncompiled run (resume one more epoch)
    eager, ckpt_e = _fit(run, tmp_path / "e", False, None, ckpt=ckpt_c, epochs=2)
    assert not _is_compiled(eager.model.lm) and eager.trainer.global_step == 4
    assert set(torch.load(ckpt_e, weights_only=False)["state_dict"]) == keys
    # uncompiled checkpoint -> compiled run
    again, _ = _fit(run, tmp_path / "c2", True, backend, ckpt=ckpt_e, epochs=3)
    assert _is_compiled(again.model.lm) and again.trainer.global_step == 6
    # the same weights give the same loss compiled and eager
    batch = next(iter(eager.datamodule.val_dataloader()))
    model = eager.model.cpu().eval()
    with torch.no_grad():
        reference = model._forward(batch).loss
        compile_in_place(model.lm, True, **({"backend": backend} if backend else {}))
        assert _is_compiled(model.lm)
        assert torch.allclose(model._forward(batch).loss, reference, rtol=1e-4, atol=1e-5)


def test_compile_in_place_keeps_names_and_the_switch_is_off_by_default():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    keys = list(net.state_dict())
    assert compile_in_place(net, False) is net and not _is_compiled(net)
    assert compile_in_place(net, True, backend="eager") is net and _is_compiled(net)
    assert list(net.state_dict()) == keys
    x = torch.randn(5, 3)
    assert torch.allclose(net(x), net._call_impl(x))


def test_compiled_and_uncompiled_checkpoints_are_interchangeable(run, tmp_path):
    _check_round_trip(run, tmp_path, "eager")


@pytest.mark.slow  # inductor compiles C++ kernels on CPU: about a minute on 2 busy cores
def test_inductor_compiled_checkpoints_are_interchangeable(run, tmp_path):
    _check_round_trip(run, tmp_path, None)
