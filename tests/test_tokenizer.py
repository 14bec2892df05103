"""Tokenizer wrapper: special ids from the config files, round trips, our own BPE."""

from __future__ import annotations

import json

import pytest

from model import Tokenizer, train_bpe_tokenizer

TEXTS = [
    f"<think> {a} + {b} </think> <answer> {a + b} </answer>"
    for a in range(40) for b in (7, 93)
]


@pytest.fixture(scope="module")
def tok():
    return train_bpe_tokenizer(
        TEXTS, vocab_size=200, special_tokens=["<|endoftext|>", "<|pad|>"],
        atomic_strings=["<think>", "</think>", "<answer>", "</answer>"],
    )  # fmt: skip


def test_round_trip_and_digits_split(tok):
    text = "<think> 1234 + 56 </think> <answer> 1290 </answer>"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    digits = [tok.decode([i]) for i in tok.encode("1234")]
    assert digits == ["1", "2", "3", "4"], "digits must be one token each"
    assert tok.encode("</answer>") == [tok.token_to_id("</answer>")], "tags are single tokens"
    assert tok.decode_batch(tok.encode_batch(["a b", "12"])) == ["a b", "12"]
    assert tok.eos_id == tok.token_to_id("<|endoftext|>") == tok.pad_id


def test_save_and_load(tok, tmp_path):
    tok.save(tmp_path)
    again = Tokenizer.from_dir(tmp_path)
    assert again.eos_ids == tok.eos_ids and again.pad_id == tok.pad_id
    assert again.encode(TEXTS[5]) == tok.encode(TEXTS[5])


def test_transformers_reads_our_tokenizer(tok, tmp_path):
    from grpo.run.imports import import_transformers

    AutoTokenizer = import_transformers().AutoTokenizer
    tok.save(tmp_path)
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    assert theirs.encode(TEXTS[3], add_special_tokens=False) == tok.encode(TEXTS[3])
    assert theirs.eos_token_id == tok.eos_id


def test_special_ids_from_config_files(tok, tmp_path):
    tok.tok.save(str(tmp_path / "tokenizer.json"))
    pad = tok.token_to_id("<|pad|>")
    # No config file names an EOS: a clear error.
    with pytest.raises(ValueError, match="end-of-sequence"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": {"content": "</answer>"}, "pad_token": "<|pad|>"})
    )
    t = Tokenizer.from_dir(tmp_path)
    assert t.eos_ids == [tok.token_to_id("</answer>")] and t.pad_id == pad
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [0, 7]}))
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 7}))
    t = Tokenizer.from_dir(tmp_path)
    assert t.eos_ids == [0, 7, tok.token_to_id("</answer>")], "every EOS id named counts, once"


def test_missing_or_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.from_dir(tmp_path)


@pytest.mark.parametrize("name", ["tokenizer_config.json", "config.json", "generation_config.json"])
@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe{}"])
def test_side_config_not_an_object_names_the_file(tok, tmp_path, name, content):
    """A list or non-UTF-8 side file is one clear ValueError naming it, not AttributeError."""
    tok.save(tmp_path)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name):
        Tokenizer.from_dir(tmp_path)
