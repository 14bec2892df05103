"""A thin wrapper over `tokenizers.Tokenizer`, plus builders for our own tiny models.

    tok = Tokenizer.from_dir("path/to/checkpoint")   # tokenizer.json + *config.json
    ids = tok.encode("What is 2 + 3")
    text = tok.decode(ids)

End-of-sequence and padding ids come from the checkpoint's `generation_config.json`,
`config.json` and `tokenizer_config.json` (every EOS id any of them names counts).
If no padding token is named, the first EOS id is used for padding. That is safe
here because completion masks come from lengths, never from comparing ids with
`pad_id` (pad == eos is a classic bug: it masks the real EOS out of the loss).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer


class Tokenizer:
    def __init__(
        self, tokenizer: HFTokenizer, eos_ids: Sequence[int], pad_id: int | None = None,
        bos_id: int | None = None,
    ) -> None:  # fmt: skip
        if not eos_ids:
            raise ValueError("a tokenizer needs at least one end-of-sequence id")
        self.tok = tokenizer
        self.eos_ids = list(dict.fromkeys(int(i) for i in eos_ids))
        self.pad_id = int(pad_id) if pad_id is not None else self.eos_ids[0]
        self.bos_id = bos_id
        # Raw id -> text; ids are never added automatically (the prompt is ours).
        self.tok.no_padding()
        self.tok.no_truncation()

    @property
    def eos_id(self) -> int:
        return self.eos_ids[0]

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_batch(
        self, batch: Sequence[Sequence[int]], skip_special_tokens: bool = False
    ) -> list[str]:
        batch = [list(b) for b in batch]
        return self.tok.decode_batch(batch, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"missing tokenizer: {file} does not exist")
        try:
            tok = HFTokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises a bare Exception on bad files
            raise ValueError(f"{file}: cannot be read as a tokenizers file ({e})") from e

        def read(name: str) -> dict[str, Any]:
            f = path / name
            if not f.is_file():
                return {}
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{f} is not valid JSON: {e}") from e
            if not isinstance(data, dict):
                raise ValueError(f"{f}: expected a JSON object, got {type(data).__name__}")
            return data

        tok_cfg, model_cfg, gen_cfg = (
            read("tokenizer_config.json"), read("config.json"), read("generation_config.json")
        )  # fmt: skip

        def token_id(entry: Any) -> int | None:
            if isinstance(entry, dict):  # {"content": "<|endoftext|>", ...}
                entry = entry.get("content")
            return tok.token_to_id(entry) if isinstance(entry, str) else None

        def ids(value: Any) -> list[int]:
            if value is None:
                return []
            return [int(v) for v in value] if isinstance(value, list) else [int(value)]

        eos = ids(gen_cfg.get("eos_token_id")) + ids(model_cfg.get("eos_token_id"))
        tok_eos = token_id(tok_cfg.get("eos_token"))
        if tok_eos is not None:
            eos.append(tok_eos)
        if not eos:
            raise ValueError(
                f"{path}: no end-of-sequence token in generation_config.json, config.json "
                "or tokenizer_config.json"
            )
        pad = token_id(tok_cfg.get("pad_token"))
        if pad is None:
            pad = model_cfg.get("pad_token_id", gen_cfg.get("pad_token_id"))
        bos = token_id(tok_cfg.get("bos_token"))
        if bos is None:
            bos = model_cfg.get("bos_token_id")
        return cls(tok, eos, pad, bos)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json, tokenizer_config.json and generation_config.json (atomic)."""
        from model.checkpoint import atomic_path, write_json_atomic

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "tokenizer.json") as tmp:
            self.tok.save(str(tmp))

        def name(i: int | None) -> str | None:
            return None if i is None else self.tok.id_to_token(i)

        write_json_atomic(
            path / "tokenizer_config.json",
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": name(self.eos_id),
                "pad_token": name(self.pad_id),
                "bos_token": name(self.bos_id),
                "clean_up_tokenization_spaces": False,
                "model_max_length": 1 << 30,
            },
        )
        gen = {"eos_token_id": self.eos_ids if len(self.eos_ids) > 1 else self.eos_id,
               "pad_token_id": self.pad_id}
        if self.bos_id is not None:
            gen["bos_token_id"] = self.bos_id
        write_json_atomic(path / "generation_config.json", gen)


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ("<|endoftext|>",),
    atomic_strings: Sequence[str] = (),
) -> Tokenizer:  # fmt: skip
    """Train a byte-level BPE tokenizer for a from-scratch model.

    Digits are split one per token (`Digits(individual_digits=True)`), so a tiny
    model sees numbers column by column, as the arithmetic tasks need.
    `atomic_strings` (e.g. "<think>") become single tokens that are still
    decoded as text. The first special token is the EOS (and padding) token.
    """
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            # Split punctuation off words; keep the leading space with each word.
            pre_tokenizers.Split(Regex(r"[^\s\w]+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if atomic_strings:
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken(s, normalized=False, special=False) for s in atomic_strings])
    eos = tok.token_to_id(special_tokens[0])
    return Tokenizer(tok, [eos], eos)
