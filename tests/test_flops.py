"""model.flops: the analytic FLOP counts against torch's own counter and brute-force sums."""

import torch

from model import ModelConfig, Transformer, generate
from model.flops import (
    attention_flops,
    head_flops,
    linear_flops,
    rollout_flops,
    tokens_flops,
    update_flops,
)

CFG = ModelConfig(vocab_size=97, hidden_size=48, intermediate_size=80, num_layers=3,
                  num_heads=6, num_kv_heads=2, head_dim=8)  # fmt: skip


def counted(fn) -> dict[str, int]:
    # Imported here, not at the top: it imports triton, which must not be imported
    # before tests/test_kernels.py sets TRITON_INTERPRET=1 at collection.
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}


def test_linear_and_head_equal_torch_counter_on_a_forward():
    m = Transformer(CFG).init_weights(seed=1)
    ids = torch.randint(0, CFG.vocab_size, (2, 13))
    c = counted(lambda: m(ids))
    # The CPU attention kernel is not counted by torch; every aten.mm is a projection or the head.
    assert c["aten.mm"] == 2 * 13 * (linear_flops(CFG) + head_flops(CFG))
    # By hand: q,o 48x48, k,v 48x16, mlp 3 x 48x80, 3 layers; head 48x97.
    assert linear_flops(CFG) == 2 * 3 * (2 * 48 * 48 + 2 * 48 * 16 + 3 * 48 * 80)
    assert head_flops(CFG) == 2 * 48 * 97


def test_attention_flops_equal_explicit_matmuls():
    S, D, nh = 29, CFG.head_dim, CFG.num_heads
    q, k, v = torch.randn(nh, 1, D), torch.randn(nh, S, D), torch.randn(nh, S, D)
    c = counted(lambda: torch.softmax(q @ k.transpose(1, 2), -1) @ v)
    assert sum(c.values()) * CFG.num_layers == attention_flops(CFG, S)


def test_tokens_flops_is_the_causal_sum():
    for n, ctx in [(1, 0), (5, 0), (7, 11), (0, 4)]:
        brute = sum(linear_flops(CFG) + attention_flops(CFG, ctx + j + 1) for j in range(n))
        assert tokens_flops(CFG, n, ctx, head=3) == brute + 3 * head_flops(CFG)


def test_rollout_flops_equal_a_generate_call_less_its_unread_prompt_logits():
    m = Transformer(CFG).init_weights(seed=2)
    P, T = 9, 6
    prompt = torch.randint(1, CFG.vocab_size, (P,)).tolist()
    c = counted(lambda: generate(m, [prompt], max_new_tokens=T, temperature=0))
    # The decode step (model/decode.py) runs its attention as counted batched matmuls;
    # the prefill's attention is the CPU kernel, which torch does not count.
    decode_attention = sum(attention_flops(CFG, P + j + 1) for j in range(T - 1))
    assert c["aten.bmm"] == decode_attention
    # Projections and the head (mm, or addmm with a bias or the residual): generate
    # computes logits for all P prompt positions; only the last one is read.
    assert c["aten.mm"] + c["aten.addmm"] - (P - 1) * head_flops(CFG) == (
        rollout_flops(CFG, [P], [T]) - (tokens_flops(CFG, P) - P * linear_flops(CFG))
        - decode_attention
    )  # fmt: skip


def test_group_rows_share_their_prompt():
    one = rollout_flops(CFG, [10], [4])
    two = rollout_flops(CFG, [10, 20], [4, 4, 6, 6], group_size=2)
    assert two == (one + tokens_flops(CFG, 3, 10, head=3) + tokens_flops(CFG, 20, 0, head=1)
                   + 2 * tokens_flops(CFG, 5, 20, head=5))  # fmt: skip
    upd = update_flops(CFG, [10], [4, 1], group_size=2)
    assert upd == 3 * (tokens_flops(CFG, 10) + tokens_flops(CFG, 3, 10, head=4)
                       + tokens_flops(CFG, 0, 10, head=1))  # fmt: skip
