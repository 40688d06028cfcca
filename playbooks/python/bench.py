"""Read-only benchmark for levenshtein.distance: checks it, then times it.

    python3 bench.py --check   compare with a reference on edge cases and random small pairs
    python3 bench.py           time a fixed workload (the best of passes over about half a
                               second), verify every answer, print "seconds: X" (lower is better)
"""

from __future__ import annotations

import hashlib
import sys
import time

from levenshtein import distance

MIN_SECONDS = 0.5  # keep timing passes until this much time is spent ...
MIN_PASSES = 3  # ... and at least this many passes
# sha256 of the workload's answers, so a wrong answer fails without a slow reference run
EXPECTED_DIGEST = "a0dbe4d32616db8f"


class Random:
    """xorshift64: the workload must be the same on every Python, so no `random` module."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def below(self, n: int) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.state = x
        return x % n


def mutate(rng: Random, text: str, edits: int, start: int, end: int, alphabet: str) -> str:
    chars = list(text)
    for _ in range(edits):
        at = start + rng.below(max(1, min(end, len(chars)) - start))
        kind = rng.below(3)
        if kind == 0 and chars:
            chars[min(at, len(chars) - 1)] = alphabet[rng.below(len(alphabet))]
        elif kind == 1:
            chars.insert(at, alphabet[rng.below(len(alphabet))])
        elif chars:
            del chars[min(at, len(chars) - 1)]
    return "".join(chars)


def workload() -> list[tuple[str, str]]:
    """DNA reads with scattered errors, and revisions of a text line edited in one place."""
    rng = Random(0x5EED)
    pairs = []
    dna = "ACGT"
    for _ in range(12):
        read = "".join(dna[rng.below(4)] for _ in range(150 + rng.below(100)))
        pairs.append((read, mutate(rng, read, len(read) // 10, 0, len(read), dna)))
    words = "the of and to in is was for on that with as by at from his her an be this".split()
    letters = "abcdefghijklmnopqrstuvwxyz "
    for _ in range(12):
        line = " ".join(words[rng.below(len(words))] for _ in range(50 + rng.below(30)))
        middle = len(line) // 2
        pairs.append((line, mutate(rng, line, 8, middle - 20, middle + 20, letters)))
    return pairs


def reference(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i]
        for j in range(1, len(b) + 1):
            substitute = previous[j - 1] + (a[i - 1] != b[j - 1])
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitute))
        previous = current
    return previous[-1]


def run_check() -> int:
    cases = [("", ""), ("", "abc"), ("abc", ""), ("a", "a"), ("a", "b"), ("kitten", "sitting"),
             ("flaw", "lawn"), ("intention", "execution"), ("abc", "abc"), ("ab", "ba"),
             ("naïve café", "naive cafe"), ("😀x", "x😀"), ("a" * 70, "a" * 69 + "b"),
             ("ab" * 40, "ba" * 40), ("x" * 130, "")]  # fmt: skip
    rng = Random(7)
    for _ in range(300):
        alphabet = "abcd"[: 1 + rng.below(4)]
        a = "".join(alphabet[rng.below(len(alphabet))] for _ in range(rng.below(90)))
        if rng.below(2):
            b = mutate(rng, a, rng.below(12), 0, len(a), alphabet)
        else:
            b = "".join(alphabet[rng.below(len(alphabet))] for _ in range(rng.below(90)))
        cases.append((a, b))
    for a, b in cases:
        for x, y in ((a, b), (b, a)):
            got, expected = distance(x, y), reference(x, y)
            if got != expected:
                print(f"error: distance({x!r}, {y!r}) = {got!r}, expected {expected}",
                      file=sys.stderr)  # fmt: skip
                return 1
    print(f"check: ok ({2 * len(cases)} pairs)")
    return 0


def digest(answers: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, answers)).encode()).hexdigest()[:16]


def run_bench() -> int:
    pairs = workload()
    best, spent, passes = float("inf"), 0.0, 0
    answers: list[int] = []
    while passes < MIN_PASSES or spent < MIN_SECONDS:
        start = time.perf_counter()
        answers = [distance(a, b) for a, b in pairs]
        elapsed = time.perf_counter() - start
        best, spent, passes = min(best, elapsed), spent + elapsed, passes + 1
    if digest(answers) != EXPECTED_DIGEST:
        print(f"error: wrong answers (digest {digest(answers)}, expected {EXPECTED_DIGEST})",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"pairs={len(pairs)} passes={passes} best={best * 1e3:.2f} ms")
    print(f"seconds: {best:.6f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(run_check())
    if sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--check]")
    sys.exit(run_bench())
