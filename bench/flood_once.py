"""One flood figure, for `playbooks/clive-flood.md` (clive tuning its own PTY reader): the rate at which
the clive of this repository (this working copy: not an installed one) shows a 10 MB plain and a
10 MB coloured log flood, best of three each, and their geometric mean as `flood MB/s: X`.

    python bench/flood_once.py [SIZE_MB]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before site-packages: an editable install elsewhere must not be measured

import clive  # noqa: E402
from bench.flood import MB, _rate, clive_flood, make_file  # noqa: E402
from clive.terminal import reading  # noqa: E402


def main() -> int:
    size = int(float(sys.argv[1]) * MB) if len(sys.argv) > 1 else 10 * MB
    print(f"clive from {Path(clive.__file__).parent}; C extension: {'yes' if reading._speedups else 'no'}")
    rates = []
    with tempfile.TemporaryDirectory(prefix="clive-flood-") as tmp:
        for coloured in (False, True):
            path = Path(tmp) / f"flood-{'coloured' if coloured else 'plain'}.log"
            last = make_file(path, size, coloured)
            runs = []
            for _ in range(3):
                seconds, shown = clive_flood(path, last)
                if not shown:
                    print(f"{path.name}: the flood's last line is not on the screen")
                    return 1
                runs.append(seconds)
            rates.append(_rate(path, runs))
            print(f"{path.name}: {rates[-1]:.1f} MB/s")
    print(f"flood MB/s: {math.sqrt(rates[0] * rates[1]):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
