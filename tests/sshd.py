"""A real OpenSSH server for the tests: on 127.0.0.1, a free port, a throwaway host key, and login
by key only, for the user running the tests."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


class SSHServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
        keys = folder / "authorized_keys"
        shutil.copy(folder / "client_key.pub", keys)
        keys.chmod(0o600)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
            f"PidFile {folder / 'sshd.pid'}", f"AuthorizedKeysFile {keys}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "PermitRootLogin prohibit-password", "StrictModes no",
            "PrintMotd no", "PrintLastLog no", "LogLevel ERROR",
        ]) + "\n")  # fmt: skip
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation folder
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = self.proc.stderr.read() if self.proc.stderr else ""
                    raise RuntimeError(f"sshd did not start: {why}") from None
                time.sleep(0.05)
        self.user = getpass.getuser()

    def command(self, *extra: str) -> str:
        """The ssh command line that logs in to this server."""
        options = ["-i", str(self.folder / "client_key"), "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", *extra]
        return " ".join(["ssh", *options, f"{self.user}@127.0.0.1"])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
