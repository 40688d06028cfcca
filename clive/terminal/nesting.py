"""Shells started inside the terminal: which command lines start one (``ssh host``, ``su -``,
``sudo -i``, ``docker exec -it … bash``, a plain ``bash``), whether it runs where this machine's
kernel cannot see (another host, a container), and what a shell's prompt looks like on the screen.

Decided from the command line typed, not guessed from the screen, so a script that asks a question
is never mistaken for a shell."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

SHELLS = {"bash", "zsh", "sh", "dash", "ash", "ksh", "mksh", "fish", "busybox"}
# Where the shell runs elsewhere: the kernel here sees only the client, in raw mode, whatever runs there.
REMOTE = {"ssh", "mosh", "docker", "podman", "kubectl", "lxc", "incus"}
# ssh's options that take a value (``ssh -p 2222 host``).
_SSH_VALUED = set("BbcDEeFIiJLlmOopQRSWw")
_SUDO_VALUED = {"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"}
# The end of a shell's prompt, just before the cursor: "$ ", "# ", "% ", "> ", "❯ ".
PROMPT_END = re.compile(r"[$#%>❯»]\s?$")


@dataclass(frozen=True, slots=True)
class NestedShell:
    """A shell started inside the terminal, as clive knows it."""

    launcher: str  # ssh, su, sudo, docker, bash, ...
    command: str  # the command line that started it
    remote: bool  # it runs where this machine's kernel cannot see
    nonce: bytes | None  # its prompt markers' nonce; None: no integration (an unknown shell)
    level: int  # its place among the nested shells, 1 for the first
    since: int  # the terminal's prompt count when it started


_STARTS = {"ssh", "mosh", "su", "sudo", "docker", "podman", "kubectl", "lxc", "incus", "exec", "command", *SHELLS}


def nested_shell(command: str) -> str | None:
    """The program that ``command`` runs when it starts an interactive shell, else None."""
    first = command.split(None, 1)[0] if command.strip() else ""
    if "=" not in first and os.path.basename(first.strip("'\"")) not in _STARTS:
        return None  # most commands: no need to parse the line (run() asks for every command)
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) or words[0] in ("exec", "command")):
        words = words[1:]
    if not words or any(w in (";", "&&", "||", "|", "&") for w in words):
        return None
    name, args = os.path.basename(words[0]), words[1:]
    match name:
        case "ssh":
            return "ssh" if _ssh_starts_shell(args) else None
        case "mosh":
            return "mosh" if "--" not in args else None
        case "su":
            return "su" if not {"-c", "--command"} & set(args) else None
        case "sudo":
            return "sudo" if _sudo_starts_shell(args) else None
        case "docker" | "podman":
            return name if args[:1] in (["exec"], ["run"]) and _interactive(args) and _ends_in_shell(args) else None
        case "kubectl":
            return name if args[:1] == ["exec"] and _interactive(args) and _ends_in_shell(args) else None
        case "lxc" | "incus":
            starts = args[:1] == ["shell"] or (args[:1] == ["exec"] and _ends_in_shell(args))
            return name if starts else None
        case _ if name in SHELLS:
            return name if _plain_shell(args) else None
    return None


def _ssh_starts_shell(args: list[str]) -> bool:
    i, tty = 0, False
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        flags = args[i][1:]
        for j, flag in enumerate(flags):
            if flag in "tT":
                tty = flag == "t"
            if flag in _SSH_VALUED:
                i += 0 if j + 1 < len(flags) else 1  # -p2222 or -p 2222
                break
            if flag in "NfGV":  # no shell: forwarding only, background, config or version
                return False
        i += 1
    rest = args[i + 1 :] if i < len(args) else None
    if rest is None:
        return False  # no host
    if not rest:
        return True
    return tty and os.path.basename(rest[0]) in SHELLS and _plain_shell(rest[1:])


def _sudo_starts_shell(args: list[str]) -> bool:
    i, login = 0, False
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-i", "-s", "--login", "--shell"):
            login = True
        elif args[i] in _SUDO_VALUED:
            i += 1
        i += 1
    rest = args[i:]
    if not rest:
        return login
    program = os.path.basename(rest[0])
    if program == "su":
        return not {"-c", "--command"} & set(rest[1:])
    return program in SHELLS and _plain_shell(rest[1:])


def _interactive(args: list[str]) -> bool:
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    return ("i" in flags and "t" in flags) or {"--interactive", "--tty"} <= set(args)


def _ends_in_shell(args: list[str]) -> bool:
    tail = args[args.index("--") + 1 :] if "--" in args else args[-1:]
    return bool(tail) and os.path.basename(tail[0]) in SHELLS and _plain_shell(tail[1:])


def _plain_shell(args: list[str]) -> bool:
    """A shell's arguments that leave it interactive: options only, no script and no -c."""
    return all(a.startswith("-") and a not in ("-c", "-s") for a in args)
