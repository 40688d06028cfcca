"""Only the C extension: everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# optional: where it cannot be built (no compiler), clive runs the same checks in Python, slower.
setup(ext_modules=[Extension("clive.terminal._speedups", ["clive/terminal/_speedups.c"], optional=True)])
