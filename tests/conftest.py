"""Fixtures every test module may use."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The viewer's async tests (``pytest.mark.anyio``) run on asyncio, as Textual does."""
    return "asyncio"
