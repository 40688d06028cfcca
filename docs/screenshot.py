"""Take the README's screenshot of the co-pilot during the matmul playbook.

    python docs/screenshot.py

Textual writes an SVG; rsvg-convert (Debian: librsvg2-bin) turns it into docs/copilot.png.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from clive.experiments import runner
from clive.tui.live import LiveApp

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def host(terminal, agent, recorder, policy, body) -> tuple[int, str]:
    app: LiveApp | None = None

    def drive() -> int:
        assert app is not None
        return body(app.say)[0]

    app = LiveApp(terminal, agent, drive, recorder.path, auto_approve=True)

    async def shoot() -> None:
        async with app.run_test(size=(140, 42)) as pilot:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(app.cycle_events) < 22:
                await pilot.pause(0.2)
            await pilot.press("p")  # pause, so the picture shows a settled screen
            await pilot.pause(1.5)
            app.save_screenshot(filename="copilot.svg", path=str(DOCS))
            app.close_agent()

    asyncio.run(shoot())
    return 0, "done"


def main() -> None:
    with tempfile.TemporaryDirectory() as sessions:
        options = runner.RunOptions(
            playbook=ROOT / "playbooks" / "matmul.md", sessions=Path(sessions), max_experiments=6
        )
        runner.run(options, host=host)
    svg = DOCS / "copilot.svg"
    subprocess.run(["rsvg-convert", "-w", "1400", str(svg), "-o", str(DOCS / "copilot.png")], check=True)
    svg.unlink()


if __name__ == "__main__":
    main()
