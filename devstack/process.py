"""Process plumbing shared by the local Kafka and store runners.

Servers are started *detached*: a short-lived launcher process starts the server in a new
session (so it has its own process group) and exits, so the server is never a child of the
caller. That keeps ``python -m devstack servers kafka start`` free to exit, and keeps pytest free of
``subprocess.Popen`` objects for still-running children (which warn when garbage-collected)
and of zombies to reap.

POSIX only (``fcntl``, process groups); liveness checks use ``/proc`` where it exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from devstack.errors import InfraError

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40

# Ports handed out by this process and not yet necessarily bound by their server, so two
# servers started concurrently from one process never get the same port.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``host:port`` right now.

    ``SO_REUSEADDR`` mirrors what the JVM and Go set on their listeners, so a port that only
    has TIME_WAIT connections left from a previous run of the same server counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK) -> int:
    """A currently free TCP port on ``host``, chosen below the kernel's ephemeral range.

    Ports from the ephemeral range (what ``bind(0)`` returns) can be taken at any moment as
    the local end of some outgoing connection; the servers keep their ports across restarts,
    so a port outside that range is much less likely to be gone when a server comes back.
    """
    low, _ = _ephemeral_range()
    first, last = 20000, low - 1
    with _handed_out_lock:
        if last - first > 1000:
            for _ in range(200):
                port = first + secrets.randbelow(last - first)
                if port not in _handed_out and port_is_free(port, host):
                    _handed_out.add(port)
                    return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port


def tcp_open(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``log_file`` (empty if it does not exist)."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def with_log_tail(message: str, log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    """``message`` followed by the tail of ``log_file``, for an :class:`InfraError`."""
    tail = log_tail(log_file, lines)
    if not tail:
        return f"{message}\n(no output in {log_file})"
    return f"{message}\n--- last {lines} lines of {log_file} ---\n{tail}"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock held for the ``with`` block (``flock`` on ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, object] | None:
    """The JSON object stored at ``path``, or ``None`` if missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Mapping[str, object]) -> None:
    """Atomically replace ``path`` with ``data`` as JSON."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run a command to completion and return its combined output; raise on failure."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise InfraError(f"{what}: {argv[0]} not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"{what}: timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-LOG_TAIL_LINES:])
        raise InfraError(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n"
            f"--- last {LOG_TAIL_LINES} lines of output ---\n{tail}"
        )
    return done.stdout


# The launcher: start the server in a new session with output appended to the log, print its
# pid, and exit without waiting (os._exit skips Popen's "still running" finalizer).
_LAUNCHER = """\
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab", buffering=0) as log:
    proc = subprocess.Popen(
        spec["argv"], cwd=spec["cwd"], stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


def spawn_detached(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` detached in its own session, output appended to ``log_file``.

    Writes the pid to ``pid_file`` and returns it. The process is its own process-group
    leader, so :func:`terminate` can signal everything it spawned. ``env`` replaces the
    environment (default: inherit this one).
    """
    for parent in {log_file.parent, pid_file.parent}:
        parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with log_file.open("a") as log:
        log.write(f"--- {stamp} leadtrail: starting {' '.join(argv)}\n")
    spec = json.dumps({"argv": list(argv), "cwd": str(cwd), "log": str(log_file)})
    out = run_tool(
        [sys.executable, "-c", _LAUNCHER, spec],
        what=f"launching {Path(argv[0]).name}",
        env=env,
        timeout=60,
    )
    try:
        pid = int(out.strip())
    except ValueError as exc:
        raise InfraError(f"launcher printed no pid: {out!r}") from exc
    pid_file.write_text(f"{pid}\n")
    return pid


def _task_state(stat_file: Path) -> str | None:
    """The state letter of a ``/proc/.../stat`` file (``R``, ``S``, ``T``...), None if gone."""
    try:
        stat = stat_file.read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _task_dead(stat_file: Path) -> bool:
    return _task_state(stat_file) in {None, "Z", "X"}


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (zombies count as dead).

    Detached servers are re-parented to PID 1, which does not reap children in every
    container, so a stopped server may linger as a zombie. A multi-threaded process (the
    JVM) whose main thread is already a zombie is still alive, and still holds its ports,
    until all its threads are gone.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return not Path("/proc/self").exists()
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        tasks = []
    stat_files = [task / "stat" for task in tasks] or [proc / "stat"]
    return not all(_task_dead(stat_file) for stat_file in stat_files)


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


def read_pid(pid_file: Path, *, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is ours, else ``None``.

    ``marker`` must appear in the process's command line (where ``/proc`` can tell), so a
    recycled pid is never mistaken for the server. A stale pid file is removed.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if is_alive(pid):
        cmdline = _cmdline(pid)
        if cmdline is None or marker in cmdline:
            return pid
    pid_file.unlink(missing_ok=True)
    return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        # Not a group leader we may signal (should not happen for spawn_detached children).
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, *, timeout: float = 30.0, graceful: bool = True) -> None:
    """Stop the process group led by ``pid``: SIGTERM, wait ``timeout``, then SIGKILL.

    With ``graceful=False`` it is SIGKILLed straight away (a crash, for fault tests).
    """
    if graceful:
        _signal_group(pid, signal.SIGCONT)  # a paused process would not see the SIGTERM
        _signal_group(pid, signal.SIGTERM)
        if _wait_dead(pid, timeout):
            return
    _signal_group(pid, signal.SIGKILL)
    if not _wait_dead(pid, 10.0):
        raise InfraError(f"process {pid} survived SIGKILL")


def pause(pid: int, *, timeout: float = 5.0) -> None:
    """Freeze the process group led by ``pid`` (SIGSTOP): it keeps its sockets open and answers
    nothing, like a wedged server.

    Returns once every thread of ``pid`` is stopped (where ``/proc`` can tell); raises
    :class:`InfraError` when there is no such process or it does not stop within ``timeout``,
    so a fault test never goes on against a server that is still answering.
    """
    try:
        os.killpg(pid, signal.SIGSTOP)
    except ProcessLookupError as exc:
        raise InfraError(f"process group {pid} is gone; nothing to pause") from exc
    if not Path("/proc/self").exists():
        return  # no /proc to tell (not Linux): the signal was delivered
    deadline = time.monotonic() + timeout
    while True:
        try:
            stats = [task / "stat" for task in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            stats = []
        states = [_task_state(stat) for stat in stats]
        alive = [state for state in states if state not in {None, "Z", "X"}]
        if not alive:
            raise InfraError(f"process {pid} has exited (or is a zombie); nothing to pause")
        running = [state for state in alive if state not in {"T", "t"}]
        if not running:
            return
        if time.monotonic() >= deadline:
            raise InfraError(f"process {pid}: {len(running)} thread(s) still running after SIGSTOP")
        time.sleep(0.01)


def resume(pid: int) -> None:
    """Undo :func:`pause` (SIGCONT)."""
    _signal_group(pid, signal.SIGCONT)


def wait_until_healthy(
    probe: Callable[[float], str | None],
    *,
    pid: int,
    what: str,
    timeout: float,
    log_file: Path,
) -> None:
    """Poll ``probe`` until it reports healthy or ``timeout`` seconds pass.

    ``probe(budget)`` returns ``None`` when healthy and otherwise a short reason; it must
    return within about ``budget`` seconds. Fails early if the process exits.
    """
    deadline = time.monotonic() + timeout
    reason = "not probed yet"
    while True:
        if not is_alive(pid):
            raise InfraError(with_log_tail(f"{what} (pid {pid}) exited during startup", log_file))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InfraError(
                with_log_tail(f"{what} not healthy after {timeout:.0f}s: {reason}", log_file)
            )
        reason = probe(min(5.0, max(remaining, 0.5))) or ""
        if not reason:
            return
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def ensure_port_free(port: int, what: str, *, grace: float = 5.0) -> None:
    """Raise a clear error if a server's remembered port is taken by someone else.

    Waits up to ``grace`` seconds first: a server that was just killed may still be
    releasing it.
    """
    deadline = time.monotonic() + grace
    while not port_is_free(port):
        if time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        raise InfraError(
            f"{what}: port {LOOPBACK}:{port} is in use by another process; "
            "stop that process, or delete the run directory to start afresh on new ports"
        )
