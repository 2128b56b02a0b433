"""EMA-reset quantizer: lookup, straight-through gradients, buffers, masking, resets, resume."""

import io

import pytest
import torch

from soke_lightning.models.quantizer import EMAResetQuantizer, histogram_stats


def _slow_nearest(latent, codebook):
    out = []
    for x in latent.reshape(-1, latent.shape[-1]):
        d = [float(((x - c) ** 2).sum()) for c in codebook]
        out.append(min(range(len(d)), key=d.__getitem__))
    return torch.tensor(out).reshape(latent.shape[:-1])


def test_lookup_matches_slow_reference():
    torch.manual_seed(0)
    q = EMAResetQuantizer(12, 6)
    q.codebook.normal_()
    latent = torch.randn(3, 7, 6)
    assert torch.equal(q.quantize(latent), _slow_nearest(latent, q.codebook))
    assert torch.equal(q.dequantize(q.quantize(latent)), q.codebook[q.quantize(latent)])


def test_dequantize_rejects_out_of_range_codes():
    q = EMAResetQuantizer(4, 2)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        q.dequantize(torch.tensor([0, 4]))


def test_straight_through_gradient():
    torch.manual_seed(0)
    q = EMAResetQuantizer(8, 4).train()
    latent = torch.randn(2, 10, 4, requires_grad=True)
    out = q(latent)
    weights = torch.randn_like(out.quantized)
    (out.quantized * weights).sum().backward()
    assert torch.allclose(latent.grad, weights)
    # forward values are the codes, not the latents
    assert torch.equal(out.codes, out.codes.clamp(0, 7))


def test_first_forward_initialises_once_from_batch_first_rows(monkeypatch):
    torch.manual_seed(0)
    q = EMAResetQuantizer(5, 3, reset="first", decay=0.99).train()
    latent = torch.randn(1, 20, 3)
    calls = []
    original = q._initialise
    monkeypatch.setattr(q, "_initialise", lambda v: (calls.append(v.clone()), original(v)))
    assert not bool(q.initialised)
    q(latent)
    assert bool(q.initialised) and len(calls) == 1
    assert torch.equal(calls[0][:5], latent[0, :5])
    for _ in range(3):
        q(torch.randn(1, 20, 3) * 100)
    assert len(calls) == 1 and int(q.num_updates) == 4


def test_all_state_is_in_buffers():
    q = EMAResetQuantizer(5, 3)
    assert set(q.state_dict()) == {"codebook", "ema_sum", "ema_count", "initialised", "num_updates"}
    assert list(q.parameters()) == []


def test_eval_mode_changes_nothing():
    torch.manual_seed(0)
    q = EMAResetQuantizer(6, 3).train()
    q(torch.randn(2, 8, 3))
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q.eval()(torch.randn(2, 8, 3))
    for k, v in q.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_padding_is_excluded_from_updates_and_commitment():
    torch.manual_seed(0)
    valid = torch.randn(1, 12, 3)
    padded = torch.cat([valid, torch.full((1, 4, 3), 1e3)], dim=1)
    mask = torch.tensor([[True] * 12 + [False] * 4])
    a = EMAResetQuantizer(4, 3, seed=3).train()
    b = EMAResetQuantizer(4, 3, seed=3).train()
    out_a = a(valid)
    out_b = b(padded, mask)
    for k in a.state_dict():
        assert torch.allclose(a.state_dict()[k].float(), b.state_dict()[k].float()), k
    assert torch.allclose(out_a.commit_loss, out_b.commit_loss)
    # the reference behaviour (padding included) is still available and differs
    c = EMAResetQuantizer(4, 3, seed=3, mask_padding=False).train()
    out_c = c(padded, mask)
    assert float(out_b.counts.sum()) == 12 and float(out_c.counts.sum()) == 16
    assert not torch.allclose(c.ema_sum, b.ema_sum)


def test_dead_codes_are_reseeded_from_batch_latents():
    torch.manual_seed(0)
    q = EMAResetQuantizer(16, 2, reset="random").train()
    q(torch.randn(1, 64, 2))
    far = torch.randn(1, 64, 2) + 50.0
    q(far)
    # every code assigned nothing in the second batch is dead (count < 1) and must now be a row of `far`
    dead = q.ema_count < 1.0
    assert dead.any()
    rows = far.reshape(-1, 2)
    for code in q.codebook[dead]:
        assert (rows - code).abs().sum(-1).min() < 1e-6


def test_random_reset_is_not_first_rows():
    torch.manual_seed(0)
    latent = torch.randn(1, 200, 4)
    q = EMAResetQuantizer(8, 4, reset="random", decay=0.0).train()
    q._initialise(latent.reshape(-1, 4))
    assert not torch.equal(q.codebook, latent[0, :8])
    f = EMAResetQuantizer(8, 4, reset="first").train()
    f._initialise(latent.reshape(-1, 4))
    assert torch.equal(f.codebook, latent[0, :8])


def test_small_batch_is_tiled_with_noise():
    q = EMAResetQuantizer(10, 4).train()
    q._initialise(torch.randn(3, 4))
    assert torch.isfinite(q.codebook).all()
    assert len({tuple(r.tolist()) for r in q.codebook}) == 10


def test_resume_is_bit_identical_and_never_reinitialises():
    torch.manual_seed(0)
    batches = [torch.randn(2, 16, 4) for _ in range(3)]
    ref = EMAResetQuantizer(8, 4).train()
    for b in batches:
        ref(b)
    first = EMAResetQuantizer(8, 4).train()
    for b in batches[:2]:
        first(b)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = EMAResetQuantizer(8, 4).train()
    resumed.load_state_dict(torch.load(buf))
    assert bool(resumed.initialised)
    resumed(batches[2])
    for k, v in ref.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_histogram_stats():
    perplexity, usage = histogram_stats(torch.tensor([5.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0]))
    assert perplexity == pytest.approx(4.0, rel=1e-5)
    assert usage == pytest.approx(0.5)
