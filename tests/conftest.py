"""Fixtures shared by several test files."""

import pytest


@pytest.fixture(scope="session")
def addition_base():
    """(model, tokenizer, task): the shipped addition demo base, fp32, and its task."""
    import torch

    from grpo.bases.common import TEMPLATE
    from grpo.tasks import get_task
    from model import Tokenizer, load_pretrained

    path = "assets/demo-base"
    task = get_task("addition", template=TEMPLATE)
    return load_pretrained(path, dtype=torch.float32), Tokenizer.from_dir(path), task
