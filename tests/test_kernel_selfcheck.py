"""kernels.logprobs: backend "auto" self-checks the Triton kernel once per CUDA device.

The check and the fallback are tested here on CPU, with failures injected as
stand-in kernels; the real kernel is checked on a GPU at first use.
"""

from __future__ import annotations

import importlib.util

import torch

import kernels.logprobs as lp
from kernels.logprob_torch import torch_logprobs_and_entropy
from kernels.logprobs import triton_self_check


def test_self_check_passes_a_correct_kernel():
    assert triton_self_check("cpu", candidate=torch_logprobs_and_entropy) is None


def test_self_check_names_what_failed():
    def raises(*args):
        raise RuntimeError("ptxas fatal: unsupported gpu\nsecond line")

    def wrong_values(h, w, t, temperature):
        logp, ent = torch_logprobs_and_entropy(h, w, t, temperature)
        return logp + 1e-3, ent

    def wrong_gradients(h, w, t, temperature):
        logp, ent = torch_logprobs_and_entropy(h, w, t, temperature)
        zero = 0 * (h.sum() + w.sum())  # right values, zero gradients
        return logp.detach() + zero, ent.detach() + zero

    def nan(h, w, t, temperature):
        logp, ent = torch_logprobs_and_entropy(h, w, t, temperature)
        return logp * float("nan"), ent

    assert triton_self_check("cpu", raises) == "RuntimeError: ptxas fatal: unsupported gpu"
    assert "log-probs differ" in triton_self_check("cpu", wrong_values)
    assert "hidden gradient differs" in triton_self_check("cpu", wrong_gradients)
    assert "log-probs differ" in triton_self_check("cpu", nan)


def test_auto_falls_back_to_the_twin_once_with_one_warning(monkeypatch, capsys):
    monkeypatch.setattr(lp, "_SELF_CHECKED", {})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # "triton is there"
    calls = []

    def failing(device):
        calls.append(str(device))
        return "its log-probs differ from the PyTorch twin's by 0.5"

    cuda = torch.device("cuda", 0)
    assert lp._auto_backend(torch.device("cpu"), failing) == "torch" and calls == []
    assert lp._auto_backend(cuda, failing) == "torch"
    assert lp._auto_backend(cuda, failing) == "torch"
    assert calls == ["cuda:0"], "checked once per device"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: the Triton log-prob kernel failed its self-check on cuda:0 (its "
                   "log-probs differ from the PyTorch twin's by 0.5); using the PyTorch twin"]
    assert lp._auto_backend(torch.device("cuda", 1), lambda d: None) == "triton"
    assert capsys.readouterr().err == ""
    # Without Triton, "auto" is the twin and nothing is checked.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert lp._auto_backend(torch.device("cuda", 2), failing) == "torch"
    assert calls == ["cuda:0"]
