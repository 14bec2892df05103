"""GRPO for R1-Zero: tasks, rewards, rollouts, advantages, losses, the trainer and evaluation."""

from grpo.run.imports import check_kernels

check_kernels()  # `import kernels` must give this project's package (see grpo/run/imports.py)
