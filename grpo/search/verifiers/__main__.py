"""python -m grpo.search.verifiers train ...: see grpo/search/verifiers/train.py."""

import sys

USAGE = "usage: python -m grpo.search.verifiers train --policy P --kind orm|prm --out DIR [...]"


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] != "train":
        extra = f" (unknown command {argv[0]!r})" if argv else ""
        print(USAGE + extra, file=sys.stderr)
        return 2
    from grpo.search.verifiers.train import main as train_main

    return train_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
