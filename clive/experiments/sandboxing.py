"""Whether a run is sandboxed, and the sandbox a playbook's work needs: its toolchains, its dotfiles,
its GPUs, the network only when asked."""

from __future__ import annotations

from pathlib import Path

from clive.experiments.errors import BadInput
from clive.experiments.playbook import Playbook
from clive.safety.sandbox import Sandbox, unavailable

# Policies that decide by themselves what to type: sandboxed unless the person says --no-sandbox.
SANDBOXED_BY_DEFAULT = ("claude",)


def decide_sandbox(asked: bool | None, network: bool, policy: str, recorded: object = None) -> bool:
    """Whether the run is sandboxed: as asked (``--sandbox``/``--no-sandbox``), else as a resumed run
    was, else by the policy; refused in one line where the sandbox cannot start."""
    if asked is False and network:
        raise BadInput("--sandbox-net asks for a sandbox with network and --no-sandbox for none: choose one")
    sandboxed = asked if asked is not None else recorded if isinstance(recorded, bool) else None
    if network:
        sandboxed = True
    by_default = sandboxed is None
    if sandboxed is None:
        sandboxed = policy in SANDBOXED_BY_DEFAULT
    if sandboxed and (reason := unavailable()) is not None:
        who = f"--policy {policy} runs sandboxed by default" if by_default else "the sandbox cannot start"
        raise BadInput(f"{who}, but {reason}: install bubblewrap, or pass --no-sandbox to run without one")
    return sandboxed


def sandbox_for(pb: Playbook, workdir: Path, scratch: Path, *, network: bool = False) -> Sandbox:
    """The sandbox for ``pb``'s work in ``workdir``: what it ``requires`` and its ``sandbox:`` view."""
    view = pb.sandbox
    return Sandbox(
        Path(workdir),
        Path(scratch),
        network=network or view.network,
        readable=(*pb.requires, *view.paths),
        home_files=view.home,
        gpu=pb.needs_gpu,
    )
