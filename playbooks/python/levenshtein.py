"""Edit distance (Levenshtein): the function under study.

Edit freely; bench.py is read-only. The knobs below are what the offline search changes; a model
may rewrite anything, as long as ``distance`` keeps its meaning.
"""

# "matrix" (the textbook full table), "two_rows", "one_row" (one list, locals, no min()),
# "bit_parallel" (Myers/Hyyrö: one row as bits of a Python int)
IMPL = "matrix"
# strip the common prefix and suffix before the dynamic programme
TRIM_AFFIXES = False


def distance(a: str, b: str) -> int:
    """The least number of single-character insertions, deletions and substitutions that turn
    ``a`` into ``b``."""
    if TRIM_AFFIXES:
        a, b = _trim_affixes(a, b)
    return _IMPLS[IMPL](a, b)


def _trim_affixes(a: str, b: str) -> tuple[str, str]:
    start = 0
    end_a, end_b = len(a), len(b)
    while start < end_a and start < end_b and a[start] == b[start]:
        start += 1
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    return a[start:end_a], b[start:end_b]


def _matrix(a: str, b: str) -> int:
    rows, cols = len(a) + 1, len(b) + 1
    table = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        table[i][0] = i
    for j in range(cols):
        table[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            table[i][j] = min(
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
                table[i - 1][j - 1] + cost,
            )
    return table[rows - 1][cols - 1]


def _two_rows(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        previous = current
    return previous[len(b)]


def _one_row(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a  # the row runs over the shorter string
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diagonal, left = i - 1, i
        for j, cb in enumerate(b):
            above = row[j + 1]
            best = diagonal if ca == cb else diagonal + 1
            if above + 1 < best:
                best = above + 1
            if left + 1 < best:
                best = left + 1
            row[j + 1] = left = best
            diagonal = above
        # row[0] is the left border of the next row
        row[0] = i
    return row[len(b)]


def _bit_parallel(a: str, b: str) -> int:
    # Myers (1999) / Hyyrö (2001): the vertical differences of one DP column packed in an int;
    # Python ints are arbitrary precision, so one pass handles any length.
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for position, char in enumerate(b):
        peq[char] = peq.get(char, 0) | (1 << position)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    vp, vn, score = mask, 0, m
    for char in a:
        eq = peq.get(char, 0)
        xv = eq | vn
        xh = ((((eq & vp) + vp) & mask) ^ vp) | eq
        hp = vn | ~(xh | vp) & mask
        hn = vp & xh
        if hp & high:
            score += 1
        elif hn & high:
            score -= 1
        hp = ((hp << 1) | 1) & mask
        hn = (hn << 1) & mask
        vp = hn | ~(xv | hp) & mask
        vn = hp & xv
    return score


_IMPLS = {
    "matrix": _matrix,
    "two_rows": _two_rows,
    "one_row": _one_row,
    "bit_parallel": _bit_parallel,
}
