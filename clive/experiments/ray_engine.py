"""Ray behind clive's ``Engine``: the one module that imports it.

``--workers N`` alone starts a private Ray instance for the run: ``ray start --head`` bound to
127.0.0.1, in a process session of its own that clive's watchdog ends if clive dies (even by
SIGKILL), with a token of its own and no dashboard. ``--cluster ADDRESS`` (or ``RAY_ADDRESS``)
joins an existing cluster instead. Each worker is an actor holding a ``Worker``; nothing assumes a
shared file system: the repository goes out as a bundle in Ray's object store, and patches, reports
and recordings come back as bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clive.experiments.coordinator import EngineError, Finished
from clive.experiments.worker import Assignment, Worker, WorkerError, WorkerSetup
from clive.safety.limits import Watchdog
from clive.safety.procs import end_session
from clive.session.files import META

INSTALL = "parallel workers need Ray: pip install 'clive[cluster]'"
START_TIMEOUT = 60.0  # seconds for the private instance to answer, and for workers to be placed
STOP_GRACE = 10.0  # seconds a stopped worker has to hand its experiment back before it is ended
CLOSE_TIMEOUT = 30.0
RECORDING_INTERVAL = 1.0  # seconds between asking busy workers for their recordings' news
# Ray 2.60 turns a loopback --node-ip-address into the machine's own address unless it believes it
# runs without a cluster (this switch): for an instance on 127.0.0.1 it must be off before ray loads.
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_available() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _import_ray(loopback: bool) -> Any:
    if loopback and "ray" not in sys.modules:
        os.environ[_LOOPBACK_ONLY] = "0"
    try:
        import ray
    except ImportError:
        raise EngineError(INSTALL) from None
    return ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRay:
    """A private Ray instance for one run, on 127.0.0.1 only; it goes away with the run."""

    def __init__(self, cpus: int, gpus: int | None) -> None:
        # Ray's socket paths must stay short (AF_UNIX): a folder of its own under the system's tmp.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="clive-ray-"))
        self.address = f"127.0.0.1:{_free_port()}"
        token = secrets.token_hex(32)
        # The token stays in this process and its children (Ray reads it as it loads): nothing is
        # written to ~/.ray.
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
        os.environ[_LOOPBACK_ONLY] = "0"
        command = [
            sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head", "--block",
            "--node-ip-address", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
            "--temp-dir", str(self.temp_dir), "--num-cpus", str(cpus), "--include-dashboard", "false",
            "--disable-usage-stats", "--object-store-memory", str(200 * 1024 * 1024),
        ]  # fmt: skip
        if gpus is not None:
            command += ["--num-gpus", str(gpus)]
        Watchdog.start()
        self._log = open(self.temp_dir / "ray-start.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        Watchdog.watch(self.proc.pid)  # its whole process session ends with clive, however clive ends

    def failure(self) -> str:
        """What Ray said when it could not start, in a line."""
        try:
            lines = (self.temp_dir / "ray-start.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        said = [line for line in lines if "rror" in line] or lines[-1:] or ["no output"]
        return " ".join(said[-1].split())[:300]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # ray start --block stops every Ray process it started
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        end_session(self.proc.pid)
        Watchdog.unwatch(self.proc.pid)
        self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _actor_class(ray: Any) -> Any:
    @ray.remote(max_concurrency=4)  # stop(), note() and recording() answer while run() works
    class WorkerActor:
        def __init__(self) -> None:
            self.worker: Worker | None = None
            self.scratch: Path | None = None

        def start(self, setup: WorkerSetup, bundle: bytes) -> tuple[str, str]:
            self.scratch = Path(tempfile.mkdtemp(prefix=f"clive-worker-{setup.index}-"))
            self.worker = Worker(setup, bundle, self.scratch)
            return socket.gethostname(), ray.get_runtime_context().get_node_id()

        def run(self, assignment: Assignment, bundle: list[Any]) -> Any:
            # The bundle's ref comes in a list, so that Ray hands it over unresolved: it is fetched
            # from the object store only where this working copy lacks the commit.
            assert self.worker is not None
            needed = bool(bundle) and self.worker.needs(assignment.base)
            return self.worker.run(assignment, ray.get(bundle[0]) if needed else None)

        def stop(self) -> None:
            if self.worker is not None:
                self.worker.stop()

        def recording(self) -> dict[str, bytes]:
            return self.worker.recording() if self.worker is not None else {}

        def note(self) -> str:
            return self.worker.note if self.worker is not None else ""

        def close(self) -> dict[str, bytes]:
            rest = self.worker.close() if self.worker is not None else {}
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
            return rest

    return WorkerActor


class RayEngine:
    """Workers as Ray actors, on a private instance or an existing cluster."""

    def __init__(
        self,
        *,
        address: str | None,
        resources: dict[str, float],
        namespace: str,
        say: Any,
        experiment_seconds: float,
    ) -> None:
        self.say = say
        self.local: LocalRay | None = None
        self.resources = dict(resources)
        self._deadline = 2 * experiment_seconds + 600  # a worker that says nothing for this long is ended
        if address is None:
            if "ray" in sys.modules:  # Ray reads its token settings once, as it loads
                raise EngineError("a private Ray instance must start before Ray is loaded in this process")
            gpus = int(resources.get("gpus", 0)) or None
            self.local = LocalRay(cpus=os.cpu_count() or 1, gpus=gpu_count() if gpus else None)
            address = self.local.address
        self.address = address
        self.ray = _import_ray(_is_loopback(address))
        ray = self.ray
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level="ERROR")
                break
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds while the head starts
                if self.local is None or time.monotonic() > deadline or self.local.proc.poll() is not None:
                    why = self.local.failure() if self.local is not None else " ".join(str(exc).split())[:300]
                    self._teardown()
                    raise EngineError(f"cannot reach Ray at {address}: {why}") from None
                time.sleep(0.2)
        self._actor = _actor_class(ray)
        self._actors: dict[int, Any] = {}
        self._hosts: dict[int, str] = {}
        self.node_of: dict[int, str] = {}  # each worker's Ray node id
        self._running: dict[Any, tuple[int, float]] = {}  # ref -> (worker, started)
        self._bundles: tuple[str, Any] | None = None
        self._stopped_at: float | None = None
        self._pulls: dict[Any, int] = {}  # ref of a recording() asked for -> its worker
        self._last_pull = 0.0

    def nodes(self) -> int:
        return sum(1 for n in self.ray.nodes() if n.get("Alive"))

    def start(self, setups: list[WorkerSetup], bundle: bytes) -> list[int]:
        """Start a worker per setup; those that could not start are named on stderr."""
        ray = self.ray
        bundle_ref = ray.put(bundle)
        options = _actor_options(self.resources)
        starting = {}
        for setup in setups:
            actor = self._actor.options(**options).remote()
            self._actors[setup.index] = actor
            starting[actor.start.remote(setup, bundle_ref)] = setup.index
        ready, late = ray.wait(list(starting), num_returns=len(starting), timeout=START_TIMEOUT)
        for ref in ready:
            k = starting[ref]
            try:
                self._hosts[k], self.node_of[k] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker's failure is reported, the others go on
                self.say(f"clive: worker {k} did not start: {_why(exc)}")
                self._end(k)
        for ref in late:
            k = starting[ref]
            self.say(f"clive: worker {k} was not placed within {START_TIMEOUT:g}s: the cluster lacks {options}")
            self._end(k)
        return sorted(self._hosts)

    def host(self, worker: int) -> str:
        return self._hosts.get(worker, "")

    def workers(self) -> list[int]:
        return sorted(self._hosts)

    def submit(self, worker: int, assignment: Assignment, bundle: bytes | None) -> None:
        refs = []
        if bundle is not None:
            if self._bundles is None or self._bundles[0] != assignment.base:
                self._bundles = (assignment.base, self.ray.put(bundle))
            refs = [self._bundles[1]]
        self._running[self._actors[worker].run.remote(assignment, refs)] = (worker, time.monotonic())

    def wait(self, timeout: float) -> list[Finished]:
        ray = self.ray
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        finished = []
        for ref in ready:
            worker, _ = self._running.pop(ref)
            try:
                report = ray.get(ref)
                earlier = self._pulled(worker)  # bytes a pull took before the report took the rest
                if earlier:
                    report = dataclasses.replace(report, recording=_joined(earlier, report.recording))
                finished.append(Finished(worker, report))
            except ray.exceptions.RayActorError as exc:  # the actor, its process or its node is gone
                finished.append(Finished(worker, None, _why(exc)))
                self._end(worker)
            except Exception as exc:  # noqa: BLE001 - the worker's own error: it is still there
                finished.append(Finished(worker, None, _why(exc), lost=False))
        now = time.monotonic()
        for ref, (worker, started) in list(self._running.items()):
            late = now - started > self._deadline
            stuck = self._stopped_at is not None and now - self._stopped_at > STOP_GRACE
            if late or stuck:
                del self._running[ref]
                why = f"said nothing for {self._deadline:g}s" if late else "did not stop when asked"
                finished.append(Finished(worker, None, f"{why}: ended"))
                self._end(worker)
        return finished

    def stop(self) -> None:
        self._stopped_at = time.monotonic()
        for worker, _ in self._running.values():
            with contextlib.suppress(Exception):
                self._actors[worker].stop.remote()

    def recordings(self) -> dict[int, dict[str, bytes]]:
        """What busy workers' recordings gained, as far as has come back; asks them again every
        RECORDING_INTERVAL. Never waits."""
        ray = self.ray
        got: dict[int, dict[str, bytes]] = {}
        if self._pulls:
            ready, _ = ray.wait(list(self._pulls), num_returns=len(self._pulls), timeout=0)
            for ref in ready:
                worker = self._pulls.pop(ref)
                with contextlib.suppress(Exception):  # a worker that is gone is reported by wait()
                    got[worker] = _joined(got.get(worker, {}), ray.get(ref))
        now = time.monotonic()
        if now - self._last_pull >= RECORDING_INTERVAL:
            self._last_pull = now
            asking = set(self._pulls.values())
            for worker, _ in self._running.values():
                if worker not in asking and worker in self._actors:
                    self._pulls[self._actors[worker].recording.remote()] = worker
        return got

    def _pulled(self, worker: int) -> dict[str, bytes]:
        """The answers to ``worker``'s pulls still out, waited for (they were taken before what follows)."""
        refs = [ref for ref, k in self._pulls.items() if k == worker]
        got: dict[str, bytes] = {}
        for ref in refs:
            del self._pulls[ref]
            with contextlib.suppress(Exception):
                got = _joined(got, self.ray.get(ref, timeout=CLOSE_TIMEOUT))
        return got

    def notes(self) -> dict[int, str]:
        ray = self.ray
        asked = {self._actors[w].note.remote(): w for w, _ in self._running.values()}
        if not asked:
            return {}
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=1.0)
        notes = {}
        for ref in ready:
            with contextlib.suppress(Exception):
                notes[asked[ref]] = ray.get(ref)
        return notes

    def close(self) -> dict[int, dict[str, bytes]]:
        """End every worker (their recordings' last bytes come back) and the Ray of this run."""
        ray = self.ray
        rest: dict[int, dict[str, bytes]] = {k: self._pulled(k) for k in set(self._pulls.values())}
        closing = {self._actors[k].close.remote(): k for k in self._hosts}
        if closing:
            ready, _ = ray.wait(list(closing), num_returns=len(closing), timeout=CLOSE_TIMEOUT)
            for ref in ready:
                with contextlib.suppress(Exception):
                    k = closing[ref]
                    rest[k] = _joined(rest.get(k, {}), ray.get(ref))
        for k in list(self._actors):
            self._end(k)
        self._teardown()
        return rest

    def _end(self, worker: int) -> None:
        actor = self._actors.pop(worker, None)
        self._hosts.pop(worker, None)
        if actor is not None:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)

    def _teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.ray.shutdown()
        if self.local is not None:
            self.local.close()
            self.local = None


def _joined(first: dict[str, bytes], then: dict[str, bytes]) -> dict[str, bytes]:
    """Two pieces of a recording in the order they were taken: growing files appended, meta.json the later."""
    out = dict(first)
    for name, data in then.items():
        out[name] = data if name == META else out.get(name, b"") + data
    return out


def _actor_options(resources: dict[str, float]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": resources.get("cpus", 0 if resources.get("gpus") else 1), "max_restarts": 0}
    if resources.get("gpus"):
        options["num_gpus"] = resources["gpus"]
    custom = {k: v for k, v in resources.items() if k not in ("cpus", "gpus")}
    if custom:
        options["resources"] = custom
    return options


def gpu_count() -> int:
    """GPUs this process may use: those CUDA_VISIBLE_DEVICES names, else all nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _why(exc: BaseException) -> str:
    """A Ray error in one line: the worker's own error where there is one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, WorkerError | EngineError):
        return str(cause)
    text = " ".join(str(cause or exc).split())
    kind = type(cause or exc).__name__
    return f"{kind}: {text[:200]}" if text else kind
