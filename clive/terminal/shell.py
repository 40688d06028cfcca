"""Shell integration: prompts that carry OSC 133 markers signed with a per-session nonce.

A marker is ``ESC ] 133 ; <kind> [; <exit code> ; p=<prompt number>] ; <nonce> BEL`` with kind A (prompt
starts), B (prompt ends, input begins), C (command output begins) or D (command finished). The
prompt number grows by one for every new prompt, so a prompt merely redrawn (bash redraws it on
SIGWINCH) is not mistaken for a command's end. Programs run
in the shell never see the nonce (it lives only in unexported prompt variables), so a program
printing a forged marker cannot fake a command's completion.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(rb"\x1b\]133;([ABCD])(?:;(-?\d+))?(?:;p=(\d+))?;([0-9a-f]{32})\x07")
# Longest marker we can see split across two reads; the scanner keeps this much as a tail.
MARKER_MAX = 64


@dataclass(frozen=True, slots=True)
class ShellLaunch:
    """How to start a shell with integration: argv, extra environment, files to remove later."""

    argv: tuple[str, ...]
    env: dict[str, str]
    nonce: str
    cleanup: tuple[Path, ...]


def new_nonce() -> str:
    return secrets.token_hex(16)


def shell_kind(program: str) -> str | None:
    """'bash' or 'zsh' for shells we integrate with, else None."""
    name = os.path.basename(program)
    if name == "bash":
        return "bash"
    if name == "zsh":
        return "zsh"
    return None


def default_shell() -> str:
    """The user's shell when we can integrate with it, else bash."""
    user = os.environ.get("SHELL", "")
    if shell_kind(user) and shutil.which(user):
        return user
    found = shutil.which("bash")
    if not found:
        raise FileNotFoundError("bash not found on PATH")
    return found


def _bash_rc(nonce: str, user_rc: bool) -> str:
    mark = "\\e]133;{};" + nonce + "\\a"
    lines = ["# clive shell integration (generated, removed once read)"]
    if user_rc:
        lines.append('[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"')
    lines += [
        "set +H",  # history expansion would rewrite any command containing '!'
        "unset HISTFILE",
        # PROMPT_COMMAND runs once per new prompt (not on redraws); it must save $? first.
        "PROMPT_COMMAND='__clive_s=$?; ((__clive_p++)); '\"${PROMPT_COMMAND:-:}\"",
        "PS1='\\[" + mark.format("D;$__clive_s;p=$__clive_p") + mark.format("A") + "\\]\\W\\$ \\["
        + mark.format("B") + "\\]'",
        "PS0='" + mark.format("C") + "'",
        "PS2='> '",
    ]
    return "\n".join(lines) + "\n"


def _zsh_rc(nonce: str, user_rc: bool) -> str:
    lines = ["# clive shell integration (generated, removed once read)"]
    if user_rc:
        lines.append('[ -f "$HOME/.zshrc" ] && . "$HOME/.zshrc"')
    lines += [
        "unset HISTFILE",
        # Terminal modes a program left broken (stty raw, -echo) are undone when it exits.
        "ttyctl -f",
        "__clive_precmd() { print -n \"\\e]133;D;$?;p=$((++__clive_p));" + nonce + "\\a\" }",
        "__clive_preexec() { print -n \"\\e]133;C;" + nonce + "\\a\" }",
        "precmd_functions=(__clive_precmd $precmd_functions)",
        "preexec_functions=($preexec_functions __clive_preexec)",
        "PS1=$'%{\\e]133;A;" + nonce + "\\a%}%1~%# %{\\e]133;B;" + nonce + "\\a%}'",
        "PS2='> '",
        "RPROMPT=''",
    ]
    return "\n".join(lines) + "\n"


def nested_setup(nonce: str, erase_rows: int = 0) -> str:
    """One line that gives a shell started inside the terminal (ssh, su, a container's) clive's
    prompt markers with ``nonce``: bash's or zsh's, whichever reads it; other shells ignore it. Its
    prompt says user@host, and once read it erases ``erase_rows`` rows above (the line as echoed).

    Valid POSIX sh as a whole (each shell's part is a quoted string it evals), so dash or busybox sh
    run it without a syntax error and simply draw no markers. The leading space keeps it out of the
    history where HISTCONTROL ignores such lines. Its length does not depend on ``erase_rows`` (< 1000)."""
    erase = f"printf '\\r\\033[{erase_rows:03d}A\\033[J'"
    bash = "; ".join(line for line in _bash_rc(nonce, False).splitlines()[1:]).replace("\\W\\$ ", "\\u@\\h:\\W\\$ ")
    zsh = "; ".join(line for line in _zsh_rc(nonce, False).splitlines()[1:] if not line.startswith("ttyctl"))
    zsh = zsh.replace("%1~%# ", "%n@%m:%1~%# ")
    bash, zsh = f"{bash}; {erase}", f"{zsh}; {erase}"
    return (
        f" __clive_b={shlex.quote(bash)}; __clive_z={shlex.quote(zsh)}; "
        'if [ -n "$BASH_VERSION" ]; then eval "$__clive_b"; elif [ -n "$ZSH_VERSION" ]; then eval "$__clive_z"; fi; '
        + NESTED_SETUP_END
    )


NESTED_SETUP_END = "unset __clive_b __clive_z"  # how the setup line ends, as a shell echoes it


def launch(program: str, *, user_rc: bool = False) -> ShellLaunch:
    """Build the argv and environment that start ``program`` with integration."""
    kind = shell_kind(program)
    nonce = new_nonce()
    folder = Path(tempfile.mkdtemp(prefix="clive-shell-"))
    os.chmod(folder, 0o700)
    if kind == "bash":
        rc = folder / "bashrc"
        rc.write_text(_bash_rc(nonce, user_rc))
        return ShellLaunch((program, "--noprofile", "--rcfile", str(rc), "-i"), {}, nonce, (folder,))
    if kind == "zsh":
        (folder / ".zshrc").write_text(_zsh_rc(nonce, user_rc))
        return ShellLaunch((program, "-i"), {"ZDOTDIR": str(folder)}, nonce, (folder,))
    shutil.rmtree(folder, ignore_errors=True)
    raise ValueError(f"no shell integration for {program!r} (bash and zsh have it)")
