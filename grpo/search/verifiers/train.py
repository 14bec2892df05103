"""Train an outcome (ORM) or process (PRM) reward model on the policy's own samples.

    python -m grpo.search.verifiers train --policy demo --task addition --kind orm --out runs/orm
    python -m grpo.search.verifiers train --policy runs/addition-x --task addition --kind prm \\
        --questions 200 --samples 8 --rollouts 4 --out runs/prm

1. Sample `--samples` completions (temperature 1) for each of the first
   `--questions` questions of the task's train stream (never held-out ones).
2. Keep (with `--balance hard`, the default) each question's distinct completions,
   then as many wrong as right ones, half of the wrong ones hard negatives where there
   are enough: wrong answers in the right ones' format (a countdown search that ends
   in a false "yes" or gives up; an addition scratchpad with a wrong sum) and
   completions cut off by the budget (grpo/search/verifiers/samples.py, data.py).
3. Label them. ORM: 1 if the final answer is right (the task's rule), read at
   the completion's last token. PRM: the completion is cut into steps at the
   task's delimiter (addition: the scratchpad's ", "; countdown: a try ends with its
   verdict, " yes." or " no."); each step prefix gets Math-Shepherd's hard label from
   `--rollouts` continuations sampled from it (grpo/search/verifiers/labels.py), read
   at the step's last token.
4. Train a copy of the policy with a scalar head (grpo/search/verifiers/model.py)
   with the masked BCE, `pos_weight` = negatives / positives (a balanced loss).
5. Measure it on all the samples of `--heldout` held-out questions, labelled the
   same way: the fraction of labels it predicts (P > 0.5), against always predicting
   the more frequent label; its ROC area as a judge of whole completions (its score
   at the last token); and the shortcut check, its mean score on right and on wrong
   completions of each format. A PRM's steps are also compared with exact step
   correctness where a rule can check them (addition, countdown).
6. Write `--out`: the backbone in Hugging Face layout (config.json,
   model.safetensors, tokenizer), `verifier_head.safetensors` and
   `verifier.json` (kind, settings, label counts, measurements). The folder
   is written under a temporary name and renamed when complete.

With `--samples-file FILE`, the samples of steps 1 and 5 are read from FILE when it
holds them for the same policy and settings, and written there (atomically) when it
does not exist yet: an ORM and a PRM of one policy then share one set of samples, as
python -m grpo.search.test_time_compute does (grpo/search/verifiers/samples.py).

Every flag, the policy path, the task and `--out` are checked before the
policy is sampled; a bad one is refused with one line.

Load it with `load_verifier(path)`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Tasks whose steps a PRM can be trained on and a step search can expand: the delimiter
# that ends a step, and the most tokens one sampled step may take.
STEP_DELIMITERS = {"addition": (", ",), "countdown": (" yes.", " no.")}  # countdown: a try
MAX_STEP_TOKENS = {"addition": 48, "countdown": 128}
# (grpo.search.verifiers.labels.EXACT_STEP_CHECKS: the tasks whose steps a rule can also check)
MAX_LR = 1.0


class TrainingDiverged(Exception):
    """The loss or the weights went non-finite: nothing is written (exit 1)."""


class WriteFailed(Exception):
    """--out could not be written after the training (a full disk, say): exit 1."""


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import SEED_RANGE, OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.search.verifiers train",
                           description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--policy", required=True,
                   help="checkpoint or run folder, or demo (the task's demo base)")  # fmt: skip
    p.add_argument("--task", default="addition",
                   help="addition, countdown, jsonl (ORM only; --task-path)")  # fmt: skip
    p.add_argument("--task-path", default=None,
                   help="for --task jsonl only: the file of {question, answer} lines")  # fmt: skip
    p.add_argument("--kind", required=True, choices=["orm", "prm"])
    p.add_argument("--out", required=True, help="folder to write (must not exist yet)")
    p.add_argument("--template", default="r1zero", help="prompt template of the policy")
    p.add_argument("--questions", type=int, default=200, help="training questions")
    p.add_argument("--heldout", type=int, default=50, help="held-out questions for the check")
    p.add_argument("--samples", type=int, default=8, help="completions per question")
    p.add_argument("--rollouts", type=int, default=4, help="PRM: continuations per step prefix")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--balance", default="hard", choices=["hard", "none"],
                   help="hard: distinct completions, as many wrong as right, hard negatives "
                        "in (default); none: every sample")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3,
                   help=f"AdamW learning rate, in (0, {MAX_LR}] (default 1e-3)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help=f"sampling and init seed, {SEED_RANGE}")
    p.add_argument("--samples-file", default=None,
                   help="JSON file of the samples: read if it holds them for this policy and "
                        "these settings, written if it does not exist")  # fmt: skip
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default)")  # fmt: skip
    return p


def check_args(a: argparse.Namespace) -> None:
    """Every flag, the task's options, --policy and --out, before anything is loaded or
    sampled; ValueError (FileNotFoundError, FileExistsError) names the flag."""
    from grpo.run.config import check_seed_and_threads
    from grpo.tasks import available_tasks
    from grpo.tasks.templates import TEMPLATES

    for name in ("questions", "heldout", "samples", "rollouts", "max_new_tokens", "epochs",
                 "batch_size"):  # fmt: skip
        if getattr(a, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if not (math.isfinite(a.lr) and a.lr > 0):
        raise ValueError(f"--lr must be > 0 and finite, got {a.lr}")
    if a.lr > MAX_LR:  # torch's AdamW overflows near 1e38; far below that, weights blow up
        raise ValueError(f"--lr must be at most {MAX_LR} (AdamW moves each weight by about lr "
                         f"per step), got {a.lr}")  # fmt: skip
    check_seed_and_threads(a.seed, a.threads)
    if a.task not in available_tasks():
        raise ValueError(f"--task must be one of {', '.join(available_tasks())}, got {a.task!r}")
    if a.task == "jsonl" and not a.task_path:
        raise ValueError("--task jsonl needs --task-path FILE")
    if a.task != "jsonl" and a.task_path:
        raise ValueError(f"--task-path is only for --task jsonl (the task is {a.task})")
    if a.template not in TEMPLATES:
        raise ValueError(f"--template must be one of {', '.join(sorted(TEMPLATES))}, "
                         f"got {a.template!r}")  # fmt: skip
    if a.kind == "prm" and a.task not in STEP_DELIMITERS:
        raise ValueError(f"--kind prm needs a task with step delimiters "
                         f"({', '.join(STEP_DELIMITERS)}); {a.task} has none yet")  # fmt: skip
    policy_path(a)
    check_out_folder(a.out)
    if a.samples_file:  # a file of other settings, or not one of ours, is refused now
        from grpo.search.verifiers.samples import read_samples

        read_samples(a, policy_key(a))


def policy_path(a: argparse.Namespace) -> Path | None:
    """The folder --policy names (None for a built-in base: ensure_base finds or builds it).

    resolve_model_path's own messages name --model; this entry point's flag is --policy.
    """
    from grpo.bases import BASES, demo_base_name
    from grpo.run.checkpoint import resolve_model_path

    if demo_base_name(a.policy, a.task) in BASES:
        return None
    path = Path(a.policy)
    if not a.policy or not path.exists():
        raise FileNotFoundError(f"--policy {a.policy}: no such folder, and not a built-in base "
                                f"({', '.join(BASES)})")  # fmt: skip
    if not path.is_dir():
        raise FileNotFoundError(f"--policy {a.policy} is a file; it takes a checkpoint or run "
                                "folder")  # fmt: skip
    try:
        return resolve_model_path(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--policy {e}") from None


def policy_key(a: argparse.Namespace) -> str:
    """The policy as a --samples-file records it: its folder, or a built-in base's name."""
    return str(policy_path(a) or a.policy)


def check_out_folder(out: str) -> None:
    """Refuse, before any sampling, an --out that exists (other than as an empty folder) or
    could not be created.

    The folder is written beside itself under a temporary name and renamed, so the
    nearest existing folder on its way (the missing ones are created) is probed with
    a temporary file: permission bits alone miss read-only mounts and /proc, and root
    ignores them.
    """
    path = Path(out)
    if not out or path.name in ("", ".", ".."):
        raise ValueError(f"--out {out!r}: give the name of a folder to create")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"--out {out} exists and is not an empty folder")
    from grpo.run.runfolder import nearest_folder_problem

    problem = nearest_folder_problem(path)
    if problem:
        raise ValueError(f"--out {out}: cannot create the folder ({problem})")


def load_policy_and_task(a: argparse.Namespace):
    from grpo.bases import demo_base_name, ensure_base
    from grpo.tasks import get_task
    from model import Tokenizer, load_pretrained

    options = {"path": a.task_path} if a.task == "jsonl" else {}
    task = get_task(a.task, seed=a.seed, template=a.template, **options)  # before the weights
    path = policy_path(a) or ensure_base(demo_base_name(a.policy, a.task))
    return load_pretrained(path, dtype=torch.float32), Tokenizer.from_dir(path), task, path


def label(rows, kind, policy, tok, task, rollouts, max_new, seed, log, what,
          max_rows: int = 512) -> list[dict]:  # fmt: skip
    """One training record per completion: token ids, label positions and labels (and, for a
    PRM on a task whose steps a rule can check, each step prefix's exact correctness).

    The PRM's continuations of the step prefixes of many completions share policy
    calls of at most `max_rows` rows (prefixes of like lengths together); the i-th call
    uses seed + 7919 * i. A continuation takes at most what the completion budget
    `max_new` leaves after its prefix, as the search that the PRM will guide does.
    """
    from grpo.search.tree import generate_within
    from grpo.search.verifiers.data import completion_format
    from grpo.search.verifiers.labels import EXACT_STEP_CHECKS, mc_step_labels, split_steps
    from grpo.search.verifiers.model import label_positions

    rows = [r for r in rows if r[2]]  # an empty completion has nothing to label
    split = [split_steps(text, STEP_DELIMITERS[task.name]) if kind == "prm" else [text]
             for _ex, _prompt, text, _ok in rows]  # fmt: skip
    # Every open step prefix (all steps but the last) of every completion, for the PRM.
    wanted = [(j, "".join(steps[: k + 1])) for j, steps in enumerate(split) if kind == "prm"
              for k in range(len(steps) - 1)]  # fmt: skip
    taken = [len(tok.encode(p)) for _j, p in wanted]  # budget tokens each prefix used
    by_length = sorted(range(len(wanted)), key=lambda w: taken[w])
    conts: dict[tuple[int, str], list[str]] = {}
    per_call = max(1, max_rows // rollouts)
    for i, c0 in enumerate(range(0, len(wanted), per_call)):
        chunk = [wanted[w] for w in by_length[c0 : c0 + per_call]]
        left = [max(1, max_new - taken[w]) for w in by_length[c0 : c0 + per_call]]
        out = generate_within(policy, tok, tok.encode_batch([rows[j][1] + p for j, p in chunk]),
                              left, rollouts, stop_strings=["</answer>"], temperature=1.0,
                              seed=seed + 7919 * i)  # fmt: skip
        texts = tok.decode_batch(out.completions())
        for n, key in enumerate(chunk):
            conts[key] = texts[n * rollouts : (n + 1) * rollouts]
        log(f"{what}: continued {c0 + len(chunk)}/{len(wanted)} step prefixes "
            f"({rollouts} rollouts each)")  # fmt: skip
    records = []
    for j, ((ex, prompt, _text, correct), steps) in enumerate(zip(rows, split)):
        if kind == "prm":
            labels, _soft = mc_step_labels(
                steps, lambda p, n, j=j: conts[j, p][:n],
                lambda t, ex=ex: task.score(t, ex)["accuracy"] == 1.0, rollouts,
            )  # fmt: skip
        else:
            labels = [float(correct)]
        ids, ends = label_positions(tok, prompt, steps)
        record = {"ids": ids, "positions": ends, "labels": labels, "correct": bool(correct),
                  "format": completion_format(task.name, "".join(steps))}  # fmt: skip
        if kind == "prm" and task.name in EXACT_STEP_CHECKS:
            record["exact"] = EXACT_STEP_CHECKS[task.name](steps, ex)
        records.append(record)
    log(f"{what}: labelled {len(records)} completions")
    return records


def bucketed_order(records: list[dict], size: int, rng: random.Random,
                   bucket: int = 8) -> list[int]:  # fmt: skip
    """A shuffled order of the records in which each batch of `size` holds records of like
    lengths (less padding): shuffle, sort each run of bucket * size by length, cut it into
    batches, shuffle the batches. Every record appears once."""
    order = list(range(len(records)))
    rng.shuffle(order)
    cut = []
    for c0 in range(0, len(order), bucket * size):
        run = sorted(order[c0 : c0 + bucket * size], key=lambda i: len(records[i]["ids"]))
        cut += [run[b0 : b0 + size] for b0 in range(0, len(run), size)]
    rng.shuffle(cut)
    return [i for b in cut for i in b]


def batches(records: list[dict], size: int, pad_id: int, order: list[int]):
    """(ids, mask, labels, label_mask) tensors, right-padded, in `order`."""
    for b0 in range(0, len(order), size):
        recs = [records[i] for i in order[b0 : b0 + size]]
        T = max(len(r["ids"]) for r in recs)
        ids = torch.full((len(recs), T), pad_id, dtype=torch.long)
        mask = torch.zeros(len(recs), T, dtype=torch.bool)
        labels = torch.zeros(len(recs), T)
        lmask = torch.zeros(len(recs), T, dtype=torch.bool)
        for i, r in enumerate(recs):
            ids[i, : len(r["ids"])] = torch.tensor(r["ids"])
            mask[i, : len(r["ids"])] = True
            labels[i, r["positions"]] = torch.tensor(r["labels"])
            lmask[i, r["positions"]] = True
        yield ids, mask, labels, lmask


@torch.no_grad()
def label_accuracy(verifier, records, batch_size, pad_id) -> dict[str, float]:
    """Fraction of labels predicted (P > 0.5 vs label >= 0.5), and the majority baseline.

    TrainingDiverged if an output at a labelled position is not finite (a NaN
    compares as a confident "wrong", which would pass unseen)."""
    verifier.eval()
    right = total = positives = 0
    for ids, mask, labels, lmask in batches(records, batch_size, pad_id, list(range(len(records)))):
        logits = verifier(ids, mask)
        bad = int((~torch.isfinite(logits) & lmask).sum())
        if bad:
            verifier.train()
            raise TrainingDiverged(f"{bad} of {int(lmask.sum())} held-out outputs in a batch "
                                   "are not finite")  # fmt: skip
        pred = logits > 0
        truth = labels >= 0.5
        right += int(((pred == truth) & lmask).sum())
        total += int(lmask.sum())
        positives += int((truth & lmask).sum())
    verifier.train()
    base = max(positives, total - positives) / max(total, 1)
    return {"label_accuracy": right / max(total, 1), "majority_baseline": base,
            "labels": total, "positive_labels": positives}  # fmt: skip


@torch.no_grad()
def completion_scores(verifier, records, batch_size, pad_id) -> list[float]:
    """The verifier's P(correct) of each whole completion: read at its last label position
    (the last token, for an ORM and for a PRM's last step), as a search reads it."""
    verifier.eval()
    out = []
    for ids, mask, _labels, _lmask in batches(records, batch_size, pad_id,
                                              list(range(len(records)))):  # fmt: skip
        probs = torch.sigmoid(verifier(ids, mask))
        b0 = len(out)
        out += [float(probs[i, records[b0 + i]["positions"][-1]]) for i in range(len(ids))]
    verifier.train()
    return out


def judged(verifier, records, batch_size, pad_id) -> dict[str, Any]:
    """ROC area over whole completions, and the shortcut check (grpo/search/verifiers/data.py)."""
    from grpo.search.verifiers.data import roc_auc, shortcut_check

    scores = completion_scores(verifier, records, batch_size, pad_id)
    labels = [r["correct"] for r in records]
    return {"completions": len(records), "right": sum(labels),
            "roc_auc": roc_auc(scores, labels),
            "by_format": shortcut_check(scores, labels, [r["format"] for r in records])}


@torch.no_grad()
def exact_step_agreement(verifier, records, batch_size, pad_id) -> dict[str, Any] | None:
    """The MC labels and the PRM's P > 0.5 against exact step correctness (records that
    carry it); None when the task's steps cannot be checked by rule."""
    from grpo.search.verifiers.labels import agreement

    checked = [r for r in records if "exact" in r]
    if not checked:
        return None
    verifier.eval()
    predicted = []
    for b0 in range(0, len(checked), batch_size):
        recs = checked[b0 : b0 + batch_size]
        ids, mask, _labels, _lmask = next(batches(recs, batch_size, pad_id, list(range(len(recs)))))
        logits = verifier(ids, mask)
        for i, r in enumerate(recs):
            predicted += (logits[i, r["positions"]] > 0).tolist()
    verifier.train()
    exact = [e for r in checked for e in r["exact"]]
    mc = [y >= 0.5 for r in checked for y in r["labels"]]
    return {"mc_labels": agreement(mc, exact), "prm": agreement(predicted, exact)}


def train(a: argparse.Namespace, log=print) -> dict[str, Any]:
    from grpo.run.progress import Progress
    from grpo.search.verifiers.model import Verifier, verifier_loss
    from grpo.search.verifiers.samples import sampled_rows, training_rows

    check_args(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    policy, tok, task, path = load_policy_and_task(a)
    log(f"policy {path}; task {a.task}; {a.kind.upper()} from {a.questions} questions x "
        f"{a.samples} samples")  # fmt: skip
    rows, held_rows = sampled_rows(a, policy_key(a), policy, tok, task, log)
    sampled = len(rows)
    rows, kinds = training_rows(rows, task, a.balance, a.seed)
    log(f"train: {len(rows)} of {sampled} samples kept ({a.balance}): "
        + ", ".join(f"{k} {n}" for k, n in kinds.items()))  # fmt: skip
    records = label(rows, a.kind, policy, tok, task, a.rollouts, a.max_new_tokens, a.seed, log,
                    "train")  # fmt: skip
    held = label(held_rows, a.kind, policy, tok, task, a.rollouts, a.max_new_tokens, a.seed + 1,
                 log, "held-out")  # fmt: skip
    if not records:
        raise ValueError("the policy produced no non-empty completions to learn from")
    n_pos = sum(sum(1 for y in r["labels"] if y >= 0.5) for r in records)
    n_all = sum(len(r["labels"]) for r in records)
    if n_pos in (0, n_all):
        raise ValueError(f"all {n_all} training labels are {int(n_pos > 0)}: nothing to learn "
                         "(try more --questions or --samples)")  # fmt: skip
    pos_weight = (n_all - n_pos) / n_pos
    torch.manual_seed(a.seed)
    verifier = Verifier.from_policy(policy, a.kind).train()
    del policy
    opt = torch.optim.AdamW(verifier.parameters(), lr=a.lr, weight_decay=0.0)
    rng = random.Random(a.seed)
    before = label_accuracy(verifier, held, a.batch_size, tok.pad_id)
    losses = []
    for epoch in range(1, a.epochs + 1):
        order = bucketed_order(records, a.batch_size, rng)
        total, done = 0.0, 0
        bar = Progress(f"epoch {epoch}/{a.epochs}", len(records), log, unit="completions")
        for ids, mask, labels, lmask in batches(records, a.batch_size, tok.pad_id, order):
            loss = verifier_loss(verifier(ids, mask), labels, lmask, pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(ids)
            done += len(ids)
            bar.update(done)
        losses.append(total / len(records))
        try:
            if not math.isfinite(losses[-1]):
                raise TrainingDiverged(f"loss {losses[-1]}")
            if not all(bool(torch.isfinite(p).all()) for p in verifier.parameters()):
                raise TrainingDiverged("weights not finite")
            m = label_accuracy(verifier, held, a.batch_size, tok.pad_id)
        except TrainingDiverged as e:  # exit 1, and no verifier of NaNs on disk
            msg = f"training diverged in epoch {epoch} ({e}); nothing was written"
            raise TrainingDiverged(f"{msg}: try a smaller --lr than {a.lr}") from None
        log(f"epoch {epoch}/{a.epochs}: loss {losses[-1]:.4f}; held-out label accuracy "
            f"{m['label_accuracy']:.3f} (always the majority label: "
            f"{m['majority_baseline']:.3f})")  # fmt: skip
    meta = {
        "kind": a.kind, "task": a.task, "template": a.template, "policy": str(path),
        "settings": {k: v for k, v in vars(a).items() if k not in ("out", "policy")},
        "train_samples": sampled, "train_completions": len(records), "train_kinds": kinds,
        "train_labels": n_all, "train_positive_labels": n_pos, "pos_weight": pos_weight,
        "losses": losses, "heldout_before": before,
        "heldout": label_accuracy(verifier, held, a.batch_size, tok.pad_id),
        "heldout_judged": judged(verifier, held, a.batch_size, tok.pad_id),
        "heldout_exact_steps": exact_step_agreement(verifier, held, a.batch_size, tok.pad_id),
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    j = meta["heldout_judged"]
    log(f"held-out completions ({j['completions']}, {j['right']} right): ROC area "
        f"{j['roc_auc']:.3f}; mean score right / wrong by format: " + "; ".join(
            f"{f} {_mean(c['right_mean'])} / {_mean(c['wrong_mean'])} ({c['right']}/{c['wrong']})"
            for f, c in j["by_format"].items()))  # fmt: skip
    if meta["heldout_exact_steps"]:
        mc, prm = meta["heldout_exact_steps"]["mc_labels"], meta["heldout_exact_steps"]["prm"]
        log(f"held-out steps against exact correctness ({mc['steps']} steps, "
            f"{mc['exact_right']} right): MC labels agree {mc['agreement']:.3f} (false good "
            f"{mc['false_good']:.3f}, false bad {mc['false_bad']:.3f}); the PRM agrees "
            f"{prm['agreement']:.3f} (false good {prm['false_good']:.3f}, false bad "
            f"{prm['false_bad']:.3f})")  # fmt: skip
    try:
        save_verifier(verifier, tok, Path(a.out), meta)
    except OSError as e:  # --out was checked before the sampling, but a disk can fill
        raise WriteFailed(f"could not write --out {a.out} ({e.strerror or e}); nothing was "
                          "written") from None  # fmt: skip
    log(f"verifier written to {a.out} ({meta['seconds']:.0f} s)")
    return meta


def _mean(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def save_verifier(verifier, tok, out: Path, meta: dict) -> None:
    """Write the folder under a temporary name, then rename it to `out`."""
    from safetensors.torch import save_file

    from model import save_pretrained

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_pretrained(verifier.backbone, tmp, tok)
        save_file({k: v.detach().contiguous().cpu() for k, v in verifier.head.state_dict().items()},
                  str(tmp / "verifier_head.safetensors"))  # fmt: skip
        (tmp / "verifier.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # checked empty before the run
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_verifier(path: str | Path):
    """(Verifier, Tokenizer, verifier.json) from a folder written by `train`."""
    from safetensors.torch import load_file

    from grpo.search.verifiers.model import Verifier
    from model import Tokenizer, load_pretrained

    path = Path(path)
    if not (path / "verifier.json").is_file():
        raise FileNotFoundError(f"{path}: not a verifier folder (no verifier.json)")
    meta = json.loads((path / "verifier.json").read_text())
    v = Verifier(load_pretrained(path, dtype=torch.float32), meta["kind"])
    v.head.load_state_dict(load_file(str(path / "verifier_head.safetensors")))
    return v.eval(), Tokenizer.from_dir(path), meta


def main(argv: list[str] | None = None) -> int:
    from grpo.run.report import REFUSED, refused
    from model.checkpoint import CheckpointError

    prog = "python -m grpo.search.verifiers train"
    args = build_parser().parse_args(argv)
    try:
        train(args)  # check_args first: a bad flag costs one line and no sampling
    except CheckpointError as e:  # a corrupt or incomplete --policy checkpoint
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, WriteFailed) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except REFUSED as e:
        return refused(prog, e)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
