"""How often the full-width restoration gives back the printed form of the punctuation.

Draws training-split label texts (``distill.text.TextSource``, a seed no dev set uses), folds
each to what an NFKC recogniser answers, and compares three answers with the label, one
punctuation mark at a time (the marks ``engine.textforms`` can restore: , : ; ! ? ( ) and
their full-width forms):

- ``half``: the NFKC answer as it is (what the student answered before);
- ``full``: every such mark full width;
- ``context``: ``engine.textforms.restore_full_width``.

It also prints the share of lines whose every character matches exactly. Text only: no model
runs, so this isolates the rule from recognition errors (``distill evaluate`` reports the
same with a model as ``char_accuracy_exact``).

    .venv/bin/python -m bench.textforms [--count 20000] [--seed 606]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from distill.text import TextSource
from engine.charset import load_charset, normalize
from engine.textforms import FULL, restore_full_width

ANSWERS = {"half": lambda s: s, "full": lambda s: "".join(FULL.get(c, c) for c in s), "context": restore_full_width}


def score(texts: list[str]) -> dict:
    marks = Counter()  # (answer, folded mark) -> right
    seen = Counter()  # folded mark -> count
    lines = Counter()
    with_marks = 0
    for label in texts:
        folded = normalize(label)
        if len(folded) != len(label):
            continue  # a compatibility fold that changes length: not a punctuation question
        positions = [i for i, c in enumerate(folded) if c in FULL]
        with_marks += bool(positions)
        for i in positions:
            seen[folded[i]] += 1
        for name, answer in ANSWERS.items():
            out = answer(folded)
            lines[name] += out == label
            for i in positions:
                marks[name, folded[i]] += out[i] == label[i]
    total = sum(seen.values())
    result = {"lines": len(texts), "lines_with_marks": with_marks, "marks": total}
    for name in ANSWERS:
        right = sum(marks[name, c] for c in seen)
        result[name] = {
            "mark_accuracy": round(right / max(total, 1), 4),
            "line_exact": round(lines[name] / max(len(texts), 1), 4),
            "by_mark": {c: round(marks[name, c] / n, 3) for c, n in seen.most_common()},
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=606)
    args = parser.parse_args()
    source = TextSource(load_charset(), "train", 2, 12, seed=args.seed)
    rng = np.random.default_rng([args.seed, 11])
    texts = [source.sample(rng) for _ in range(args.count)]
    result = score(texts)
    print(json.dumps(result, ensure_ascii=False))
    print(f"{result['marks']} marks in {result['lines_with_marks']} of {result['lines']} training-split lines")
    print("answer    marks right   lines exact")
    for name in ANSWERS:
        print(f"{name:8s}  {100 * result[name]['mark_accuracy']:10.2f} %  {100 * result[name]['line_exact']:9.2f} %")


if __name__ == "__main__":
    main()
