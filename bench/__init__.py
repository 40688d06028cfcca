"""clive's benchmarks: each module here with ``run(quick) -> list[dict]`` is one part of ``python -m bench``."""
