"""Beyond R1-Zero: the methods around it, each a one-command experiment.

    sft/                supervised fine-tuning (train_sft.py), the tool the others need
    rejection.py        rejection sampling: a model's own correct samples as SFT data
    star.py             STaR: sample, keep the correct, fine-tune, repeat
    distill.py          distillation of an R1-Zero teacher into a small student
    distill_loss.py     token-level distillation: forward and reverse KL, generalized JSD
    r1_pipeline.py      DeepSeek-R1's four stages: cold start, RL, rejection SFT, RL
    aggregation_lesson.py  the three loss aggregations side by side
    common.py           what they share: --out checks, settings.json, evaluation, tables

See docs/beyond_zero.md.
"""
