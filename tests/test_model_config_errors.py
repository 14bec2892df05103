"""A broken config.json is a ValueError naming the file and the key, never a deep TypeError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model import ModelConfig, load_pretrained

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo-base"  # a valid checkpoint shipped with the repository


def _config() -> dict:
    return json.loads((DEMO / "config.json").read_text())


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_the_shipped_config_still_loads():
    assert ModelConfig.from_hf_config(DEMO).hidden_size == _config()["hidden_size"]


@pytest.mark.parametrize("text,expected", [
    ("[1, 2]\n", "expected a JSON object, got list"),
    ('"a string"\n', "expected a JSON object, got str"),
    ("{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
])  # fmt: skip
def test_not_a_json_object(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        ModelConfig.from_hf_config(path)
    assert str(path) in str(e.value) and expected in str(e.value), str(e.value)


@pytest.mark.parametrize("key,value", [
    ("hidden_size", "192"), ("vocab_size", 512.5), ("num_hidden_layers", 0),
    ("num_attention_heads", True), ("num_key_value_heads", -2), ("head_dim", "32"),
    ("max_position_embeddings", "1024"), ("rms_norm_eps", "1e-6"), ("rope_theta", -1.0),
    ("tie_word_embeddings", "false"), ("eos_token_id", "0"), ("eos_token_id", [0, "1"]),
    ("pad_token_id", -1), ("rope_scaling", "llama3"), ("intermediate_size", None),
])  # fmt: skip
def test_wrong_type_names_file_and_key(tmp_path, key, value):
    path = _write(tmp_path, json.dumps({**_config(), key: value}))
    with pytest.raises(ValueError) as e:
        ModelConfig.from_hf_config(path)
    msg = str(e.value)
    assert str(path) in msg and repr(key) in msg, f"{key}={value!r}: {msg}"


def test_llama3_rope_scaling_with_a_string_factor(tmp_path):
    rope = {"rope_type": "llama3", "factor": "8", "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 512}  # fmt: skip
    path = _write(tmp_path, json.dumps({**_config(), "rope_scaling": rope}))
    with pytest.raises(ValueError, match="'factor'") as e:
        ModelConfig.from_hf_config(path)
    assert str(path) in str(e.value)


def test_load_pretrained_reports_the_key(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(DEMO, ckpt)
    (ckpt / "config.json").write_text(json.dumps({**_config(), "hidden_size": "192"}))
    with pytest.raises(ValueError) as e:
        load_pretrained(ckpt)
    assert "config.json" in str(e.value) and "'hidden_size'" in str(e.value), str(e.value)
