"""Fast generation paths on tiny random SignMBarts: the static KV cache, dropping finished samples and length
buckets give the same greedy codes as the reference scheme (whole prefix re-run) for all three decoding schemes;
reduced precisions run and keep codes valid; bad settings are refused."""

import copy

import pytest
import torch

from soke_lightning.models.generation import GenerationConfig, StaticKVDecoder, decoder_copy
from soke_lightning.models.sign_mbart import SignMBart
from soke_lightning.models.text_tokenizer import TextTokenizer

PARTS, SIZES, TAGS = ["body", "lhand", "rhand"], [6, 8, 8], ["en_ASL", "zh_CSL", "de_DGS"]
TEXTS = ["the weather is nice today", "we go to school tomorrow", "guten tag wie geht es dir",
         "morgen regen im norden", "我们今天去学校上课", "明天天气很好"] * 5
TINY = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128, scale_embedding=True,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
PROMPTS = ["the weather is nice", "明天天气很好", "morgen regen im norden und im süden", "we go", "guten tag wie geht"]
LANGS = ["asl", "csl", "dgs", "asl", "dgs"]


@pytest.fixture(scope="module")
def tokenizer():
    return TextTokenizer.train(TEXTS, vocab_size=100)


def build(tokenizer, decoding, eos_bias):
    torch.manual_seed(7)
    model = SignMBart(PARTS, SIZES, TAGS, TINY, text_vocab_size=tokenizer.base_vocab_size, decoding=decoding,
                      mean_resizing=False).eval()
    with torch.no_grad():  # make </s> competitive so that samples stop at different steps
        model.mbart.final_logits_bias[0, model.eos_token_id] += eos_bias
    tok = copy.deepcopy(tokenizer)
    tok.add_motion_vocabulary(model.motion)
    src = tok.encode_source(PROMPTS, LANGS)
    return model, src


# per scheme: an </s> bias under which the five samples stop at different steps (checked below)
EOS_BIAS = {"multihead": 0.1, "flattened": 0.14, "parallel": 0.06}


@pytest.mark.parametrize("decoding", ["multihead", "flattened", "parallel"])
def test_fast_paths_give_the_reference_greedy_codes(tokenizer, decoding):
    model, src = build(tokenizer, decoding, EOS_BIAS[decoding])
    run = lambda **kw: model.generate(src.input_ids, src.attention_mask, LANGS, max_codes=12, **kw)  # noqa: E731
    reference = run(use_cache=False, drop_finished=False)
    assert len(set(reference.part_lengths.flatten().tolist())) > 1, "samples should stop at different steps"
    variants = {
        "dynamic": dict(cache="dynamic", drop_finished=False),
        "dynamic_drop": dict(cache="dynamic"),
        "static": dict(cache="static", drop_finished=False),
        "static_drop": dict(cache="static"),
        "static_drop_buckets": dict(cache="static", bucket_size=2),
        "none_drop_buckets": dict(use_cache=False, bucket_size=3),
    }
    for name, kw in variants.items():
        result = run(**kw)
        assert torch.equal(result.codes, reference.codes), name
        assert torch.equal(result.lengths, reference.lengths), name
        assert torch.equal(result.part_lengths, reference.part_lengths), name
        assert torch.equal(result.finished, reference.finished), name
        if "buckets" not in name:
            assert result.steps == reference.steps, name


def test_static_decoder_states_equal_the_stock_decoder_and_survive_dropping_rows(tokenizer):
    model, src = build(tokenizer, "multihead", 0.0)
    encoder = model.encode(src.input_ids, src.attention_mask)
    decoder = model.mbart.model.decoder
    embeds = torch.randn(5, 6, 32)
    static = StaticKVDecoder(decoder, encoder, src.attention_mask, max_steps=6)
    rows = torch.arange(5)
    for t in range(6):
        if t == 3:  # drop samples 1 and 3
            rows = torch.tensor([0, 2, 4])
            static.keep(rows)
        hidden = static.step(embeds[rows, t : t + 1])
        full = decoder(inputs_embeds=embeds[rows, : t + 1], encoder_hidden_states=encoder[rows],
                       encoder_attention_mask=src.attention_mask[rows]).last_hidden_state[:, -1]
        torch.testing.assert_close(hidden, full, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="all 6 preallocated steps"):
        static.step(embeds[rows, :1])


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_reduced_precision_runs_and_returns_valid_codes(tokenizer, precision):
    model, src = build(tokenizer, "multihead", 0.1)
    exact = model.generate(src.input_ids, src.attention_mask, LANGS, max_codes=12)
    low = model.generate(src.input_ids, src.attention_mask, LANGS, max_codes=12, precision=precision)
    assert low.codes.shape[0] == 5
    for i, n in enumerate(low.lengths.tolist()):
        assert (low.codes[i, n:] == -1).all()
        for p, k in enumerate(SIZES):
            assert ((low.codes[i, :n, p] >= 0) & (low.codes[i, :n, p] < k)).all()
    # the trained float32 weights are untouched and the first step's choice survives the rounding here
    assert model.mbart.model.decoder.layers[0].fc1.weight.dtype == torch.float32
    assert torch.equal(low.codes[:, 0], exact.codes[:, 0])
    assert decoder_copy(model.mbart.model.decoder, "float32", torch.device("cpu")) is model.mbart.model.decoder


def test_bad_generation_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="cache must be one of"):
        GenerationConfig(cache="paged")
    with pytest.raises(ValueError, match="precision must be one of"):
        GenerationConfig(precision="int4")
    with pytest.raises(ValueError, match="set cache='static'"):
        GenerationConfig(precision="int8", cache="dynamic")
    with pytest.raises(ValueError, match="set cache='static'"):
        GenerationConfig(compile="default", use_cache=False)
    with pytest.raises(ValueError, match="bucket_size"):
        GenerationConfig(bucket_size=-1)
    with pytest.raises(ValueError, match="CPU only"):
        decoder_copy(torch.nn.Linear(2, 2), "int8", torch.device("meta"))


@pytest.mark.slow
def test_compiled_static_decoder_gives_the_same_codes(tokenizer):
    model, src = build(tokenizer, "multihead", EOS_BIAS["multihead"])
    eager = model.generate(src.input_ids, src.attention_mask, LANGS, max_codes=6)
    compiled = model.generate(src.input_ids, src.attention_mask, LANGS, max_codes=6, compile="default")
    assert torch.equal(compiled.codes, eager.codes) and torch.equal(compiled.lengths, eager.lengths)
