"""Supervised fine-tuning: the tool that STaR, distillation and DeepSeek-R1's pipeline need.

    python train_sft.py --data sft.jsonl --model demo --out runs/sft     # fine-tune
    python train_sft.py --out runs/sft --resume                          # continue exactly

The input is JSONL of {"prompt": ..., "completion": ...} (grpo/experiments/sft/data.py);
`python -m grpo.experiments.rejection` writes such a file from a model's own correct
samples. The loss is the mean negative log-likelihood of the completion
tokens (and the end-of-sequence token after them) over every completion
token of an optimizer batch; prompt tokens are context only
(grpo/experiments/sft/loss.py). The run folder is the R1-Zero trainer's: sft_config.json,
metrics.jsonl, samples.jsonl, checkpoints/ in Hugging Face layout (a later
stage loads one with --model), Ctrl-C and --resume (grpo/experiments/sft/trainer.py).
"""
