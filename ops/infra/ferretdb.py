"""FerretDB 1.x on its SQLite backend: a MongoDB wire-protocol server without MongoDB.

Layout of a run directory::

    ferretdb.json   the port, fixed on first start so restarts reuse it
    ferretdb.pid    pid of the running server
    ferretdb.log    its output
    data/           the SQLite databases (one file per MongoDB database)
    state/          FerretDB's own state (instance id, telemetry choice)

The binary is built once into ``<cache>/ferretdb/<version>/ferretdb``. A plain
``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` builds a binary that panics
at startup: the module zip lacks the generated ``build/version/version.txt``, which FerretDB
requires whenever it is the main module. So :func:`ferretdb_binary` builds from a copy of the
module source with that file written in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ops.infra import process
from ops.infra.errors import InfraError
from ops.infra.paths import cache_root

FERRETDB_VERSION = "v1.24.2"
_MODULE = "github.com/FerretDB/FerretDB"


@dataclass(frozen=True)
class FerretDBServer:
    """A running local FerretDB."""

    url: str
    run_dir: Path
    pid: int


def _files(run_dir: Path) -> tuple[Path, Path, Path]:
    """``(state file, pid file, log file)`` of a run directory."""
    return run_dir / "ferretdb.json", run_dir / "ferretdb.pid", run_dir / "ferretdb.log"


def _marker(run_dir: Path) -> str:
    """What identifies our server in ``/proc/<pid>/cmdline``: its state directory."""
    return f"--state-dir={run_dir / 'state'}"


def mongo_url(port: int) -> str:
    """The connection string for a local server on ``port``."""
    return f"mongodb://{process.LOOPBACK}:{port}/"


# ---------------------------------------------------------------------------- installation


def ferretdb_binary() -> Path:
    """The FerretDB executable, building it with Go first if needed."""
    home = cache_root() / "ferretdb" / FERRETDB_VERSION
    binary = home / "ferretdb"
    if _binary_ok(binary):
        return binary
    with process.file_lock(home / ".lock"):
        if not _binary_ok(binary):
            _build(binary)
    return binary


def _binary_ok(binary: Path) -> bool:
    if not binary.is_file():
        return False
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and f"version: {FERRETDB_VERSION}" in done.stdout


def _build(binary: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise InfraError("Go is needed once to build FerretDB; no go on PATH")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=binary.parent) as tmp:
        work = Path(tmp)
        info = json.loads(
            process.run_tool(
                [go, "mod", "download", "-json", f"{_MODULE}@{FERRETDB_VERSION}"],
                what="downloading the FerretDB module",
                cwd=work,
                timeout=900,
            )
        )
        source = work / "src"
        shutil.copytree(info["Dir"], source)
        for directory, _, _ in os.walk(source):  # the module cache is read-only
            Path(directory).chmod(0o755)
        (source / "build" / "version" / "version.txt").write_text(f"{FERRETDB_VERSION}\n")
        built = work / "ferretdb"
        process.run_tool(
            [go, "build", "-trimpath", "-buildvcs=false", "-o", str(built), "./cmd/ferretdb"],
            what="building FerretDB",
            cwd=source,
            timeout=1800,
        )
        if not _binary_ok(built):
            raise InfraError(f"the FerretDB binary built in {work} does not run")
        built.replace(binary)


# ---------------------------------------------------------------------------- health


def probe_mongo(url: str, budget: float = 5.0) -> str | None:
    """``None`` if a ``ping`` command to ``url`` succeeds, else why not."""
    timeout_ms = max(500, int(budget * 1000))
    client: MongoClient[dict[str, object]] = MongoClient(
        url,
        appname="leadtrail-infra-probe",
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
    )
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        return f"ping failed: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


# ---------------------------------------------------------------------------- lifecycle


def _load_port(state_file: Path) -> int | None:
    data = process.read_json(state_file)
    port = data.get("port") if data else None
    return port if isinstance(port, int) else None


def running_ferretdb(run_dir: Path) -> FerretDBServer | None:
    """The server recorded in ``run_dir`` if its process is alive (health not checked)."""
    run_dir = run_dir.resolve()
    state_file, pid_file, _ = _files(run_dir)
    port = _load_port(state_file)
    pid = process.read_pid(pid_file, marker=_marker(run_dir))
    if port is None or pid is None:
        return None
    return FerretDBServer(url=mongo_url(port), run_dir=run_dir, pid=pid)


def start_ferretdb(run_dir: Path, *, timeout: float = 60.0) -> FerretDBServer:
    """Start (or adopt) the FerretDB of ``run_dir`` and wait until it answers ``ping``.

    Idempotent like :func:`ops.infra.kafka.start_kafka`; data and port survive restarts.
    Raises :class:`InfraError` (with the log tail) if it is not healthy within ``timeout``.
    """
    run_dir = run_dir.resolve()
    binary = ferretdb_binary()
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, pid_file, log_file = _files(run_dir)
    with process.file_lock(run_dir / ".lock"):
        port = _load_port(state_file)
        pid = process.read_pid(pid_file, marker=_marker(run_dir))
        if port is not None and pid is not None:
            _wait_healthy(port, pid, timeout, log_file)
            return FerretDBServer(url=mongo_url(port), run_dir=run_dir, pid=pid)

        if port is None:
            port = process.free_port()
            process.write_json(state_file, {"version": FERRETDB_VERSION, "port": port})
        else:
            process.ensure_port_free(port, "FerretDB")
        data_dir, ferret_state = run_dir / "data", run_dir / "state"
        data_dir.mkdir(exist_ok=True)
        ferret_state.mkdir(exist_ok=True)
        argv = [
            str(binary),
            "--handler=sqlite",
            # WAL (FerretDB's default) with synchronous=NORMAL: commits skip the fsync, the
            # database can't be corrupted, and only a power cut (not a crash of FerretDB or of
            # a test) can lose the last commits. Right for local and test infrastructure.
            # _txlock=immediate: FerretDB updates in a transaction that reads then writes; a
            # deferred one that must upgrade its read lock while another connection writes gets
            # SQLITE_BUSY at once ("database is locked", seen under load), because waiting could
            # deadlock. BEGIN IMMEDIATE takes the write lock first and waits (busy_timeout).
            f"--sqlite-url=file:{urllib.parse.quote(str(data_dir))}/"
            "?_pragma=synchronous(normal)&_txlock=immediate",
            f"--listen-addr={process.LOOPBACK}:{port}",
            _marker(run_dir),
            "--telemetry=disable",
            "--debug-addr=-",  # no metrics/pprof HTTP listener (default 127.0.0.1:8088)
            # INFO logs every connection and WARN dumps a whole message each time a driver
            # sends `endSessions`, which 1.x does not implement; failures are logged as errors.
            "--log-level=error",
        ]
        pid = process.spawn_detached(argv, cwd=run_dir, log_file=log_file, pid_file=pid_file)
        try:
            _wait_healthy(port, pid, timeout, log_file)
        except BaseException:
            process.terminate(pid, timeout=10.0)
            pid_file.unlink(missing_ok=True)
            raise
        return FerretDBServer(url=mongo_url(port), run_dir=run_dir, pid=pid)


def _wait_healthy(port: int, pid: int, timeout: float, log_file: Path) -> None:
    def probe(budget: float) -> str | None:
        # A plain connect first: pymongo would wait out a whole server-selection round.
        if not process.tcp_open(port, timeout=min(budget, 1.0)):
            return f"nothing listening on port {port}"
        return probe_mongo(mongo_url(port), budget)

    process.wait_until_healthy(probe, pid=pid, what="FerretDB", timeout=timeout, log_file=log_file)


def stop_ferretdb(run_dir: Path, *, timeout: float = 15.0, graceful: bool = True) -> None:
    """Stop the FerretDB of ``run_dir``; nothing happens if it is not running.

    ``graceful=False`` kills it with SIGKILL at once; otherwise SIGTERM, then SIGKILL after
    ``timeout`` seconds.
    """
    run_dir = run_dir.resolve()
    if not run_dir.is_dir():
        return
    _, pid_file, _ = _files(run_dir)
    with process.file_lock(run_dir / ".lock"):
        pid = process.read_pid(pid_file, marker=_marker(run_dir))
        if pid is not None:
            process.terminate(pid, timeout=timeout, graceful=graceful)
        pid_file.unlink(missing_ok=True)


def ferretdb_log(run_dir: Path) -> Path:
    """The log file of the FerretDB of ``run_dir``."""
    return _files(run_dir.resolve())[2]
