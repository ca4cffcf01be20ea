"""`python -m bench.stacks FILE [--top N] [--match TEXT]`: read a py-spy collapsed-stack profile.

Prints each frame's inclusive share of the samples (a frame counted once per stack, however deep the
recursion) and its self share, busiest first. ``--match`` keeps frames whose name or file contains TEXT.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def read(path: Path) -> tuple[Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    return inclusive, own, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stacks", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="")
    parser.add_argument("--self", dest="by_self", action="store_true", help="sort by self time")
    args = parser.parse_args(argv)
    inclusive, own, total = read(args.file)
    if not total:
        print("no samples")
        return 1
    ranking = own if args.by_self else inclusive
    shown = 0
    print(f"{total} samples\n{'incl%':>6} {'self%':>6}  frame")
    for frame, _ in ranking.most_common():
        if args.match and args.match not in frame:
            continue
        print(f"{100 * inclusive[frame] / total:6.1f} {100 * own[frame] / total:6.1f}  {frame}")
        shown += 1
        if shown >= args.top:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
