"""SignMBart on tiny random mBARTs (CPU): fused inputs, head masks, targets, loss, the three decoding schemes,
KV-cached generation, per-sample stopping, contract errors and the local pretrained-directory path."""

import copy

import pytest
import torch
import torch.nn.functional as F

from soke_lightning.models.sign_mbart import SignMBart
from soke_lightning.models.text_tokenizer import TextTokenizer

PARTS = ["body", "lhand", "rhand"]
SIZES = [6, 8, 8]
TAGS = ["en_ASL", "zh_CSL", "de_DGS"]
TEXTS = ["the weather is nice today", "we go to school tomorrow", "guten tag wie geht es dir",
         "morgen regen im norden", "我们今天去学校上课", "明天天气很好"] * 5
TINY = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128, scale_embedding=True,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


@pytest.fixture(scope="module")
def base_tokenizer():
    return TextTokenizer.train(TEXTS, vocab_size=100)


def build(base_tokenizer, decoding="multihead", seed=0, **kw):
    torch.manual_seed(seed)
    model = SignMBart(PARTS, SIZES, TAGS, TINY, text_vocab_size=base_tokenizer.base_vocab_size, decoding=decoding,
                      mean_resizing=False, **kw)
    tok = copy.deepcopy(base_tokenizer)
    tok.add_motion_vocabulary(model.motion)
    model.check_tokenizer(tok)
    return model, tok


def source(tok, texts=("the weather is nice", "明天天气很好"), langs=("asl", "csl")):
    return tok.encode_source(list(texts), list(langs))


def test_fused_embedding_is_the_lambda_weighted_sum_of_scaled_token_embeddings(base_tokenizer):
    model, _ = build(base_tokenizer, lambda_hand=0.4)
    ids = model.codes_to_ids(torch.tensor([[[1, 2, 3], [5, 0, 7]]]))
    embed = model.mbart.get_input_embeddings()  # mBART's own (scaled) embedding of normal tokens
    expected = 0.2 * embed(ids[..., 0]) + 0.4 * embed(ids[..., 1]) + 0.4 * embed(ids[..., 2])
    assert torch.allclose(model.embed_fused(ids), expected, atol=1e-6)
    assert torch.allclose(model.embed_tokens(ids[..., 0]), embed(ids[..., 0]))
    tags = model.tag_ids[:1]  # at t = 0 all three inputs are the tag: E_0 = E(tag)
    assert torch.allclose(model.embed_fused(tags), embed(tags[:, 0]), atol=1e-6)
    unscaled, _ = build(base_tokenizer, lambda_hand=0.4, embed_scale_fused=False)
    assert torch.allclose(unscaled.embed_fused(ids) * 32 ** 0.5, expected, atol=1e-5)


def test_head_masks_and_head_logits_equal_masked_full_vocabulary_logits(base_tokenizer):
    model, tok = build(base_tokenizer)
    masks = model.head_masks()
    specials = {0, 1, 2} | {tok.token_id(t) for t in TAGS}
    for p, (part, k) in enumerate(zip(PARTS, SIZES)):
        allowed = set(torch.nonzero(masks[p]).flatten().tolist())
        codes = {tok.token_id(f"<{part}_{c}>") for c in range(k)}
        assert allowed == codes | specials
        assert model.head_token_ids(p)[:k].tolist() == sorted(codes)  # local index c is code c
    hidden = torch.randn(2, 5, 32)
    full = model.mbart.lm_head(hidden) + model.mbart.final_logits_bias
    for p in range(3):
        assert torch.allclose(model.head_logits(hidden, p), full[..., model.head_token_ids(p)], atol=1e-5)
        # the CE over a head equals the CE over the full vocabulary with -inf outside the mask
        target = torch.tensor([3, 1])
        masked = full[:, 0].masked_fill(~masks[p], float("-inf"))
        ours = F.cross_entropy(model.head_logits(hidden[:, 0], p), target)
        assert torch.allclose(ours, F.cross_entropy(masked, model.head_token_ids(p)[target]), atol=1e-5)


def decode_labels(model, out, part):
    ids = model.head_token_ids(PARTS.index(part))
    labels = out.labels[part]
    return torch.where(labels >= 0, ids[labels.clamp(min=0)], labels)


@pytest.mark.parametrize("decoding", ["multihead", "parallel", "flattened"])
def test_targets_are_codes_eos_tag_and_padding_is_ignored(base_tokenizer, decoding):
    model, tok = build(base_tokenizer, decoding)
    src = source(tok)
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [0, 7, 7]], [[5, 0, 1], [-1, -1, -1], [-1, -1, -1]]])
    lengths = torch.tensor([3, 1])
    out = model(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    eos = tok.eos_token_id
    for p, part in enumerate(PARTS):
        labels = decode_labels(model, out, part)
        tag = [tok.token_id(t if p == 0 or decoding != "parallel" else f"{t}_{part}") for t in ("en_ASL", "zh_CSL")]
        if decoding == "flattened":
            # part p owns positions p, p+3, ...: its codes, and the body positions also hold </s> (the tag
            # falls on the left-hand position right after it)
            row1 = labels[1].tolist()
            assert row1[0] == tok.token_id(f"<{part}_{int(codes[1, 0, p])}>")
            assert row1[1] == (eos if p == 0 else tok.token_id("zh_CSL") if p == 1 else -100)
        else:
            assert labels[0].tolist() == [tok.token_id(f"<{part}_{int(c)}>") for c in codes[0, :, p]] + [eos, tag[0]]
            assert labels[1].tolist() == [tok.token_id(f"<{part}_{int(codes[1, 0, p])}>"), eos, tag[1], -100, -100]
    # garbage after code_lengths and extra padding columns change nothing when padding is ignored
    wider = torch.cat([codes, torch.full((2, 4, 3), -1)], dim=1)
    wider[1, 1:] = 3
    again = model(src.input_ids, src.attention_mask, wider, lengths, ["asl", "csl"])
    assert torch.allclose(out.loss, again.loss, atol=1e-6)


def test_padding_counts_only_with_the_reference_option(base_tokenizer):
    model, tok = build(base_tokenizer, ignore_pad_in_loss=False)
    src = source(tok)
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]], [[5, 0, 1], [0, 0, 0]]])
    lengths = torch.tensor([2, 1])
    narrow = model(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    wide = model(src.input_ids, src.attention_mask, torch.cat([codes, codes], 1), lengths, ["asl", "csl"])
    assert (narrow.labels["body"] == model._local_index[0][1]).any()  # <pad> is a target
    assert not torch.allclose(narrow.loss, wide.loss)


def test_encoder_padding_is_masked_in_training_and_generation(base_tokenizer):
    model, tok = build(base_tokenizer)
    model.eval()
    codes, lengths = torch.tensor([[[1, 2, 3], [4, 5, 6]]]), torch.tensor([2])
    alone = source(tok, ["明天"], ["csl"])
    padded = source(tok, ["明天", "the weather is nice today we go to school"], ["csl", "asl"])
    assert padded.input_ids.shape[1] > alone.input_ids.shape[1]
    a = model(alone.input_ids, alone.attention_mask, codes, lengths, ["csl"])
    b = model(padded.input_ids[:1], padded.attention_mask[:1], codes, lengths, ["csl"])
    assert torch.allclose(a.loss, b.loss, atol=1e-5)
    ga = model.generate(alone.input_ids, alone.attention_mask, ["csl"], max_codes=6, stop_on="never")
    gb = model.generate(padded.input_ids, padded.attention_mask, ["csl", "asl"], max_codes=6, stop_on="never")
    assert torch.equal(ga.codes[0], gb.codes[0])


def test_multihead_needs_a_third_of_the_flattened_steps(base_tokenizer):
    steps = {}
    for decoding in ("multihead", "flattened", "parallel"):
        model, tok = build(base_tokenizer, decoding)
        src = source(tok)
        result = model.eval().generate(src.input_ids, src.attention_mask, ["asl", "csl"], max_codes=7,
                                       stop_on="never")
        assert result.codes.shape == (2, 7, 3) and result.lengths.tolist() == [7, 7]
        for p, k in enumerate(SIZES):
            assert 0 <= int(result.codes[..., p].min()) and int(result.codes[..., p].max()) < k
        steps[decoding] = result.steps
    assert steps == {"multihead": 7, "flattened": 21, "parallel": 7}
    assert steps["flattened"] == 3 * steps["multihead"]


@pytest.mark.parametrize("decoding", ["multihead", "flattened", "parallel"])
def test_kv_cached_generation_equals_uncached_token_for_token(base_tokenizer, decoding):
    model, tok = build(base_tokenizer, decoding, seed=1)
    model = model.double().eval()
    src = source(tok, ["the weather is nice", "明天天气很好", "morgen regen"], ["asl", "csl", "dgs"])
    for kw in (dict(), dict(do_sample=True, temperature=1.5, top_k=5, top_p=0.9)):
        results = []
        for use_cache in (True, False):
            gen = torch.Generator().manual_seed(3)
            results.append(model.generate(src.input_ids, src.attention_mask, ["asl", "csl", "dgs"], max_codes=8,
                                          use_cache=use_cache, generator=gen, **kw))
        cached, uncached = results
        assert torch.equal(cached.codes, uncached.codes), kw
        assert torch.equal(cached.lengths, uncached.lengths) and cached.steps == uncached.steps


def overfit(model, tok, codes_list, texts, langs, steps=60):
    """Teach a tiny model two samples of different lengths."""
    src = source(tok, texts, langs)
    width = max(len(c) for c in codes_list)
    codes = torch.full((len(codes_list), width, 3), -1)
    for i, c in enumerate(codes_list):
        codes[i, : len(c)] = torch.tensor(c)
    lengths = torch.tensor([len(c) for c in codes_list])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = model(src.input_ids, src.attention_mask, codes, lengths, langs).loss
        loss.backward()
        opt.step()
    return model.eval(), src, codes, lengths


@pytest.mark.parametrize("decoding", ["multihead", "flattened", "parallel"])
def test_per_sample_stopping_in_a_mixed_batch(base_tokenizer, decoding):
    model, tok = build(base_tokenizer, decoding)
    short, long = [[1, 2, 3], [4, 5, 6]], [[0, 1, 2], [2, 3, 4], [5, 6, 7], [1, 7, 0], [3, 3, 3], [4, 0, 6], [2, 2, 2]]
    model, src, codes, lengths = overfit(model, tok, [short, long], ["明天天气很好", "the weather is nice"],
                                         ["csl", "asl"])
    result = model.generate(src.input_ids, src.attention_mask, ["csl", "asl"], max_codes=20)
    # the short sample's </s> must not stop the long one (the reference's batch-wide flag would cut it to 2)
    assert result.lengths.tolist() == [2, 7] and result.finished.tolist() == [True, True]
    assert result.codes[0, :2].tolist() == short and (result.codes[0, 2:] == -1).all()
    assert result.codes[1, :7].tolist() == long
    # decoder passes: 7 codes + the </s> step of the longest sample; flattened needs 3 per code
    assert result.steps == {"multihead": 8, "flattened": 22, "parallel": 8}[decoding]
    any_head = model.generate(src.input_ids, src.attention_mask, ["csl", "asl"], max_codes=20, stop_on="any")
    assert any_head.lengths.tolist() == [2, 7]
    # the same 7 codes without the </s> step: exactly 7 passes for multihead / parallel, 21 for flattened
    same = model.generate(src.input_ids[1:], src.attention_mask[1:], ["asl"], max_codes=7, stop_on="never")
    assert same.codes[0].tolist() == long
    assert same.steps == {"multihead": 7, "flattened": 21, "parallel": 7}[decoding]


def test_beam_search_of_width_one_is_greedy_and_beams_return_valid_codes(base_tokenizer):
    model, tok = build(base_tokenizer, "flattened", seed=2)
    model = model.double().eval()
    src = source(tok)
    greedy = model.generate(src.input_ids, src.attention_mask, ["asl", "csl"], max_codes=5)
    beam1 = model.generate(src.input_ids, src.attention_mask, ["asl", "csl"], max_codes=5, num_beams=1)
    assert torch.equal(greedy.codes, beam1.codes)
    beams = model.generate(src.input_ids, src.attention_mask, ["asl", "csl"], max_codes=5, num_beams=3)
    for i, n in enumerate(beams.lengths.tolist()):
        assert (beams.codes[i, n:] == -1).all()
        for p, k in enumerate(SIZES):
            assert ((beams.codes[i, :n, p] >= 0) & (beams.codes[i, :n, p] < k)).all()
    with pytest.raises(ValueError, match="flattened"):
        build(base_tokenizer)[0].generate(src.input_ids, src.attention_mask, ["asl", "csl"], num_beams=2)


def test_separate_heads_start_equal_to_the_tied_head_and_train(base_tokenizer):
    tied, tok = build(base_tokenizer, seed=4)
    separate, _ = build(base_tokenizer, seed=4, separate_heads=True)
    src = source(tok)
    codes, lengths = torch.tensor([[[1, 2, 3]], [[0, 0, 0]]]), torch.tensor([1, 1])
    a = tied(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    b = separate(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    assert torch.allclose(a.loss, b.loss, atol=1e-5)
    b.loss.backward()
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in separate.heads)


def test_contract_errors_name_the_mismatch(base_tokenizer):
    model, tok = build(base_tokenizer)
    src = source(tok)
    with pytest.raises(ValueError, match=r"P=3"):
        model(src.input_ids, src.attention_mask, torch.zeros(2, 3, 2, dtype=torch.long), torch.tensor([3, 3]),
              ["asl", "csl"])
    with pytest.raises(ValueError, match="lhand codebook has K=8"):
        model(src.input_ids, src.attention_mask, torch.tensor([[[0, 8, 0]], [[0, 0, 0]]]), torch.tensor([1, 1]),
              ["asl", "csl"])
    with pytest.raises(KeyError, match="xx_YYY"):
        model.generate(src.input_ids, src.attention_mask, ["asl", "xx_YYY"])
    other = TextTokenizer.train(TEXTS[:3], vocab_size=40)
    with pytest.raises(ValueError, match="text_vocab_size"):
        model.check_tokenizer(other)
    with pytest.raises(ValueError, match="decoding"):
        SignMBart(PARTS, SIZES, TAGS, TINY, decoding="sequential")
    with pytest.raises(ValueError, match="lambda_hand"):
        SignMBart(PARTS, SIZES, TAGS, TINY, lambda_hand=0.6)
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        SignMBart(PARTS, SIZES, TAGS, "facebook/mbart-large-cc25")


def test_local_pretrained_mbart_directory_loads_through_the_real_path(tmp_path):
    from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer

    from test_models_text_tokenizer import write_sentencepiece_dir

    directory = write_sentencepiece_dir(tmp_path / "mbart-large-cc25")
    tok = TextTokenizer.from_pretrained(directory)
    assert isinstance(tok.hf, MBartTokenizer)
    torch.manual_seed(0)
    pretrained = MBartForConditionalGeneration(MBartConfig(vocab_size=tok.base_vocab_size, **TINY))
    pretrained.save_pretrained(directory)
    model = SignMBart(PARTS, SIZES, TAGS, str(directory), text_vocab_size=tok.base_vocab_size)
    text_rows = model.mbart.get_input_embeddings().weight[: tok.base_vocab_size]
    assert torch.equal(text_rows, pretrained.get_input_embeddings().weight)
    tok.add_motion_vocabulary(model.motion)
    model.check_tokenizer(tok)
    src = tok.encode_source(["we go to school", "明天天气很好"], ["asl", "csl"])
    out = model(src.input_ids, src.attention_mask, torch.tensor([[[1, 2, 3]], [[0, 0, 0]]]), torch.tensor([1, 1]),
                ["asl", "csl"])
    assert torch.isfinite(out.loss)
    result = model.eval().generate(src.input_ids, src.attention_mask, ["asl", "csl"], max_codes=3)
    assert result.codes.shape[0] == 2
    saved = TextTokenizer.from_pretrained(tok.save(tmp_path / "run" / "tokenizer"))
    model.check_tokenizer(saved)
    with pytest.raises(ValueError, match="vocab_size"):
        SignMBart(PARTS, SIZES, TAGS, str(directory), text_vocab_size=tok.base_vocab_size + 1)


def test_label_smoothing_spreads_over_each_heads_vocabulary(base_tokenizer):
    model, tok = build(base_tokenizer)
    src = source(tok)
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]], [[5, 0, 1], [-1, -1, -1]]])
    lengths = torch.tensor([2, 1])
    torch.manual_seed(0)
    plain = model.eval()(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    model.label_smoothing = 0.2
    smooth = model(src.input_ids, src.attention_mask, codes, lengths, ["asl", "csl"])
    for part in PARTS:
        scores, labels = smooth.logits[part], smooth.labels[part]
        keep = labels != -100
        expected = F.cross_entropy(scores[keep], labels[keep], label_smoothing=0.2)  # over the head's columns only
        assert torch.allclose(smooth.per_part_loss[part], expected, atol=1e-5)
        assert not torch.allclose(smooth.per_part_loss[part], plain.per_part_loss[part])
    with pytest.raises(ValueError, match="label_smoothing"):
        build(base_tokenizer, label_smoothing=1.0)
