"""The stage-2 text tokenizer: embedded training, mBART conventions, motion tokens, the source rule, errors."""

import io

import pytest
import torch

from soke_lightning.models.text_tokenizer import (
    MotionVocabulary,
    TextTokenizer,
    motion_string,
    motion_token,
)

TEXTS = ["the weather is nice today", "we go to school tomorrow", "guten tag wie geht es dir",
         "morgen regen im norden", "我们今天去学校上课", "明天天气很好"] * 10
MOTION = MotionVocabulary(("body", "lhand", "rhand"), (4, 5, 5), ("en_ASL", "zh_CSL", "de_DGS"))


@pytest.fixture(scope="module")
def tokenizer():
    return TextTokenizer.train(TEXTS, vocab_size=120)


def test_embedded_tokenizer_follows_mbart_conventions(tokenizer):
    hf = tokenizer.hf
    assert hf.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tokenizer.pad_token_id == 1 and tokenizer.eos_token_id == 2
    for code in ("en_XX", "zh_CN", "de_DE", "<mask>"):
        assert tokenizer.token_id(code) >= 4
    # every character of the training texts (Chinese too) has a token: nothing becomes <unk>
    for text in set(TEXTS):
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert hf.unk_token_id not in ids, text
    assert hf.unk_token_id in hf("ж", add_special_tokens=False)["input_ids"]


def test_source_sequence_is_text_eos_lang_right_padded(tokenizer):
    src = tokenizer.encode_source(["the weather", "我们今天去学校上课"], ["asl", "zh_CN"])
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for row, mask, length, code in zip(src.input_ids, src.attention_mask, src.lengths, ["en_XX", "zh_CN"]):
        n = int(length)
        assert n == int(mask.sum())
        assert row[n - 2] == eos and row[n - 1] == tokenizer.token_id(code)
        assert (row[n:] == pad).all() and (mask[n:] == 0).all()
        assert eos not in row[: n - 2].tolist()
    short = tokenizer.encode_source(["we go to school tomorrow the weather is nice"], ["asl"], max_length=5)
    assert short.input_ids.shape == (1, 5)
    assert short.input_ids[0, -2:].tolist() == [eos, tokenizer.token_id("en_XX")]


def test_motion_tokens_are_appended_in_contract_order_and_tokenise_in_prompts(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    base = tok.base_vocab_size
    tok.add_motion_vocabulary(MOTION)
    assert len(tok) == base + len(MOTION) == base + 3 + 14
    assert tok.token_id("en_ASL") == base and tok.token_id("de_DGS") == base + 2
    assert tok.token_id(motion_token("body", 0)) == base + 3
    assert tok.token_id("<lhand_0>") == base + 3 + 4 and tok.token_id("<rhand_4>") == base + 3 + 14 - 1
    retrieval = " Key word 1, " + motion_string(torch.tensor([[1, 2, 3], [0, 4, 4]]), MOTION.parts)
    assert retrieval.endswith("<body_1><lhand_2><rhand_3><body_0><lhand_4><rhand_4>")
    ids = tok.encode_source(["the weather" + retrieval], ["asl"]).input_ids[0].tolist()
    expected = [tok.token_id(t) for t in ["<body_1>", "<lhand_2>", "<rhand_3>", "<body_0>", "<lhand_4>", "<rhand_4>"]]
    assert ids[-2 - len(expected): -2] == expected
    # the tags are special tokens: decoding without specials drops them, the motion tokens stay
    text = tok.hf.decode([tok.token_id("en_ASL"), *expected], skip_special_tokens=True)
    assert "en_ASL" not in text and "<body_1>" in text


def test_save_and_reload_restores_ids_and_motion_vocabulary(tokenizer, tmp_path):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.add_motion_vocabulary(MOTION)
    again = TextTokenizer.from_pretrained(tok.save(tmp_path / "tok"))
    assert again.motion == MOTION and again.base_vocab_size == tok.base_vocab_size and len(again) == len(tok)
    texts = ["morgen regen <body_3><lhand_1>", "明天天气很好"]
    a, b = tok.encode_source(texts, ["dgs", "csl"]), again.encode_source(texts, ["dgs", "csl"])
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)


def test_motion_vocabulary_must_follow_the_text_vocabulary(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.hf.add_tokens(["<something_else>"])
    with pytest.raises(ValueError, match="motion token"):
        tok.add_motion_vocabulary(MOTION)
    with pytest.raises(ValueError, match="codebook_sizes"):
        MotionVocabulary(("body", "lhand"), (4,), ("en_ASL",))


def test_parallel_vocabulary_has_part_specific_start_tags():
    vocab = MotionVocabulary(("body", "lhand", "rhand"), (2, 2, 2), ("en_ASL", "zh_CSL"), part_specific_tags=True)
    assert vocab.tag_tokens() == ["en_ASL", "en_ASL_lhand", "en_ASL_rhand", "zh_CSL", "zh_CSL_lhand", "zh_CSL_rhand"]
    assert len(vocab) == 6 + 6 == len(vocab.tokens())


def write_sentencepiece_dir(directory, texts=TEXTS, vocab_size=60):
    """A directory laid out like mbart-large-cc25's tokenizer files (sentencepiece.bpe.model)."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
                                   model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
                                   minloglevel=2)
    (directory / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    return directory


def test_real_mbart_sentencepiece_directory_loads(tmp_path):
    from transformers import MBartTokenizer

    tok = TextTokenizer.from_pretrained(write_sentencepiece_dir(tmp_path / "mbart"))
    assert isinstance(tok.hf, MBartTokenizer)
    assert tok.pad_token_id == 1 and tok.eos_token_id == 2
    src = tok.encode_source(["we go to school", "明天天气很好"], ["asl", "csl"])
    n = int(src.lengths[1])
    assert src.input_ids[1, n - 1] == tok.token_id("zh_CN")
    assert tok.hf.unk_token_id not in src.input_ids[0, : int(src.lengths[0]) - 2].tolist()


def test_hub_id_and_empty_tokenizer_are_clear_errors(tmp_path):
    from transformers import MBartTokenizer

    with pytest.raises(FileNotFoundError, match="sentencepiece.bpe.model"):
        TextTokenizer.from_pretrained("facebook/mbart-large-cc25")
    empty = MBartTokenizer()  # what transformers 5 silently returns for a hub id offline: 31 tokens
    assert len(empty) <= 32
    with pytest.raises(ValueError, match="every word would become <unk>"):
        TextTokenizer(empty, source="facebook/mbart-large-cc25")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="neither sentencepiece.bpe.model"):
        TextTokenizer.from_pretrained(tmp_path / "nothing")
