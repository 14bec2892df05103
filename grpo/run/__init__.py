"""What a training run needs around the algorithm: its configuration, its folder and lock,
when to stop, what it reports, checkpoints and plots.

    config.py      TrainConfig: every flag, its default, its check; presets and config files
    runfolder.py   the run folder (config.json, metrics.jsonl, samples.jsonl, checkpoints/)
                   and the lock that keeps two runs out of one folder
    checkpoint.py  atomic checkpoints of policy, optimizer, scheduler, RNG and data position
    stopping.py    Ctrl-C and SIGTERM: finish the step, checkpoint, exit 130 / 143
    report.py      the one-line messages a refused or failed run ends with
    progress.py    a progress line for any phase longer than a few seconds
    cpu_env.py     thread settings, made before torch is imported
    context.py     prompt + completion must fit the model's context
    policy.py      loading the policy from a built-in name, a checkpoint or a run
    plot.py        PNGs of metrics.jsonl, one run or several overlaid
    imports.py     `import kernels` must be ours; transformers without its kernel hub

Nothing in this package imports torch at import time of the package itself:
cpu_env must run first.
"""
