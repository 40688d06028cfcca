"""A noisy score of config.py's knobs with a known optimum (100 at TILE=UNROLL=32, VECTOR=4,
PREFETCH=4) and strong interactions: TILE pays off only with as much UNROLL, and the best PREFETCH
depends on VECTOR. Changing one knob at a time from the start makes the score worse, as tiling
without unrolling (or the reverse) does in a real kernel. The noise (about 1%) is fixed for each
configuration, so a seeded search is repeatable."""

import hashlib
import math
import re

# Read as text, not imported: a cached .pyc of an edit of the same size in the same second is stale.
KNOBS = dict(re.findall(r"^(\w+) = (\d+)", open("config.py").read(), re.MULTILINE))
TILE, UNROLL, VECTOR, PREFETCH = (int(KNOBS[k]) for k in ("TILE", "UNROLL", "VECTOR", "PREFETCH"))

TILES = [1, 2, 4, 8, 16, 32]
VECTORS = [1, 2, 4, 8]
PREFETCHES = [0, 1, 2, 4, 8]


def score(tile: int, unroll: int, vector: int, prefetch: int) -> float:
    t, u = TILES.index(tile), TILES.index(unroll)
    v, p = VECTORS.index(vector), PREFETCHES.index(prefetch)
    ridge = math.exp(-0.7 * (t - u) ** 2) * (0.25 + 0.75 * (t + u) / 10)
    pair = math.exp(-((v - 2) ** 2) / 3) * math.exp(-((p - v - 1) ** 2) / 2)
    return 100 * ridge * pair


def noise(*knobs: int) -> float:
    digest = hashlib.sha256(repr(knobs).encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32 * 2 - 1) * 0.01


if __name__ == "__main__":
    knobs = (TILE, UNROLL, VECTOR, PREFETCH)
    print(f"score: {score(*knobs) * (1 + noise(*knobs)):.4f}")
