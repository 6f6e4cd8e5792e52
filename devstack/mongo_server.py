"""The local MongoDB-wire store: mongo-java-server on its H2 (MVStore) backend, run from jars.

Layout of a run directory::

    mongo.json    the port, fixed on first start so restarts reuse it
    mongo.pid     pid of the running JVM
    mongo.log     its output
    data/store-bson.mv  the H2 MVStore file holding every database (documents as BSON)

The jars are resolved once by Maven from ``deploy/local/mongo/pom.xml`` into
``<cache>/mongo-java-server/<version>/libs``, and ``deploy/local/mongo/LeadtrailMongoServer.java``
is compiled beside them (``classes/``); a marker holding the hash of both files says the copy
and the build completed. That small launcher is what makes the store fit (see its class
comment): every write is committed before it is acknowledged, so ``kill -9`` loses nothing
acknowledged; a filter on ``_id`` plus other fields is answered by ``_id`` rather than by a
scan; and it reports a wire version current PyMongo accepts.

Limits of this store, which the services are written around: no multi-document transactions,
no change streams, and non-unique secondary indexes are accepted but not used (a query on such
a field scans the collection; hot paths go by ``_id`` or a unique index).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from devstack import process
from devstack.errors import InfraError
from devstack.kafka import java_executable
from devstack.paths import cache_root, repo_root

MONGO_JAVA_SERVER_VERSION = "1.47.0"
_MAIN_CLASS = "LeadtrailMongoServer"
_MARKER = ".leadtrail-complete"
_JVM_OPTS = (
    # A fixed 1 GB heap with G1. MVStore's 256 MB page cache lives in the old generation and
    # churns under load: with -Xms64m and SerialGC the heap stayed near 375 MB and a full
    # collection (250-600 ms, everything stopped) ran every few seconds at 100,000 leads.
    # Measured there, 6 clients for 60 s: SerialGC from 64 MB 34k operations, p99 186 ms,
    # max 1.1 s; SerialGC fixed 1 GB 62k, p99 50 ms, two full GCs; G1 fixed 1 GB 67k, p99 29 ms,
    # no full GC, longest pause 103 ms.
    "-Xms1g",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=50",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    # Netty checks on every buffer access that the buffer was not released: 11% of the store's
    # CPU samples under the ingest benchmark (JFR). The wire codec never touches a released
    # buffer, so the check buys nothing here. (Tried and dropped, one run each on a warm
    # store: ParallelGC took 4 full collections of 0.9 s in 3.5 minutes and 0.2 s young ones;
    # C1 only (-XX:TieredStopAtLevel=1) saved the JIT's CPU and doubled the rest.)
    # (Bounds checks stay on: they are what rejects a malformed wire message.)
    "-Dio.netty.buffer.checkAccessible=false",
    # slf4j-simple: one line per event to stdout (mongo.log); no line per client connection.
    "-Dorg.slf4j.simpleLogger.logFile=System.out",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire=warn",
)


@dataclass(frozen=True)
class MongoServer:
    """A running local store."""

    url: str
    run_dir: Path
    pid: int


def _files(run_dir: Path) -> tuple[Path, Path, Path]:
    """``(state file, pid file, log file)`` of a run directory."""
    return run_dir / "mongo.json", run_dir / "mongo.pid", run_dir / "mongo.log"


def _data_file(run_dir: Path) -> Path:
    return run_dir / "data" / "store-bson.mv"


def _legacy_data_file(run_dir: Path) -> Path:
    """Where stores before the BSON format (up to 99103d9) kept their data: documents and
    unique-index keys Java-serialized, which cost most of the store's CPU."""
    return run_dir / "data" / "store.mv"


def _migrate_legacy(run_dir: Path, java: str, classpath: str, log_file: Path) -> None:
    """Copy a legacy store file into the current format, once.

    The launcher copies every map and checks its entry count; the copy replaces the target
    atomically, and only then is the legacy file removed. Interrupted anywhere, the next start
    either migrates again (no new file yet) or finds the new file complete.
    """
    legacy, data = _legacy_data_file(run_dir), _data_file(run_dir)
    if not legacy.exists():
        return
    if not data.exists():
        staging = data.with_name(data.name + ".migrating")
        staging.unlink(missing_ok=True)
        print(
            f"migrating the local store's data ({legacy.stat().st_size // 2**20} MB) to its "
            "BSON format, once ...",
            file=sys.stderr,
        )
        argv = [java, *_JVM_OPTS, "-cp", classpath, _MAIN_CLASS]
        output = process.run_tool(
            [*argv, "--migrate", str(legacy), str(staging)],
            what=f"migrating {legacy} to the BSON format (the old file is left as it was)",
            timeout=6 * 3600,
        )
        with log_file.open("a") as log:
            log.write(output)
        staging.replace(data)
    legacy.unlink()


def _marker(run_dir: Path) -> str:
    """What identifies our JVM in ``/proc/<pid>/cmdline``: its data file."""
    return str(_data_file(run_dir))


def mongo_url(port: int) -> str:
    """The connection string for a local server on ``port``."""
    return f"mongodb://{process.LOOPBACK}:{port}/"


# ---------------------------------------------------------------------------- installation


def _sources() -> tuple[Path, list[Path]]:
    """``(pom.xml, the launcher's Java sources)`` in the checkout."""
    home = repo_root() / "deploy" / "local" / "mongo"
    pom, launcher = home / "pom.xml", home / f"{_MAIN_CLASS}.java"
    for path in (pom, launcher):
        if not path.is_file():
            raise InfraError(f"{path} not found; run from a Leadtrail checkout")
    return pom, sorted(home.glob("*.java"))


def server_classpath() -> str:
    """The store's classpath (jars and the compiled launcher), building it first if needed."""
    pom, sources = _sources()
    digest = hashlib.sha256(
        b"\0".join([pom.read_bytes(), *(f"{s.name}\0".encode() + s.read_bytes() for s in sources)])
    ).hexdigest()
    home = cache_root() / "mongo-java-server" / MONGO_JAVA_SERVER_VERSION
    build = home / "build"
    if not _build_complete(build, digest):
        with process.file_lock(home / ".lock"):
            if not _build_complete(build, digest):
                _build(pom, sources, digest, home, build)
    return f"{build / 'classes'}:{build / 'libs'}/*"


def _build_complete(build: Path, digest: str) -> bool:
    try:
        return (build / _MARKER).read_text().strip() == digest and (
            build / "classes" / f"{_MAIN_CLASS}.class"
        ).is_file()
    except OSError:
        return False


def _build(pom: Path, sources: list[Path], digest: str, home: Path, build: Path) -> None:
    """Resolve the jars and compile the launcher into a fresh directory, then swap it in."""
    mvn, javac = shutil.which("mvn"), _javac()
    if mvn is None:
        raise InfraError("Maven (mvn) is needed once to fetch mongo-java-server; not on PATH")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=home))
    try:
        process.run_tool(
            [
                mvn, "-q", "-B", "-f", str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging / 'libs'}",
                "-DincludeScope=runtime",
            ],
            what="resolving the mongo-java-server jars with Maven",
            timeout=900,
        )  # fmt: skip
        process.run_tool(
            [
                javac, "-nowarn", "-proc:none",
                "-cp", f"{staging / 'libs'}/*",
                "-d", str(staging / "classes"),
                *(str(source) for source in sources),
            ],
            what=f"compiling {', '.join(source.name for source in sources)}",
            timeout=300,
        )  # fmt: skip
        (staging / _MARKER).write_text(digest + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private
        if build.exists():
            shutil.rmtree(build)
        staging.rename(build)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _javac() -> str:
    java = Path(java_executable())
    javac = java.with_name("javac")
    if javac.is_file():
        return str(javac)
    found = shutil.which("javac")
    if found is None:
        raise InfraError("a JDK 17+ (javac) is needed once to build the local store's launcher")
    return found


# ---------------------------------------------------------------------------- health


def probe_mongo(url: str, budget: float = 5.0) -> str | None:
    """``None`` if a ``ping`` command to ``url`` succeeds, else why not."""
    timeout_ms = max(500, int(budget * 1000))
    client: MongoClient[dict[str, object]] = MongoClient(
        url,
        appname="leadtrail-infra-probe",
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        timeoutMS=timeout_ms,
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


def running_mongo(run_dir: Path) -> MongoServer | None:
    """The server recorded in ``run_dir`` if its process is alive (health not checked)."""
    run_dir = run_dir.resolve()
    state_file, pid_file, _ = _files(run_dir)
    port = _load_port(state_file)
    pid = process.read_pid(pid_file, marker=_marker(run_dir))
    if port is None or pid is None:
        return None
    return MongoServer(url=mongo_url(port), run_dir=run_dir, pid=pid)


def start_mongo(run_dir: Path, *, timeout: float = 60.0) -> MongoServer:
    """Start (or adopt) the store of ``run_dir`` and wait until it answers ``ping``.

    Idempotent like :func:`devstack.kafka.start_kafka`; data and port survive restarts.
    Raises :class:`InfraError` (with the log tail) if it is not healthy within ``timeout``.
    """
    run_dir = run_dir.resolve()
    classpath = server_classpath()
    java = java_executable()
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, pid_file, log_file = _files(run_dir)
    with process.file_lock(run_dir / ".lock"):
        port = _load_port(state_file)
        pid = process.read_pid(pid_file, marker=_marker(run_dir))
        if port is not None and pid is not None:
            _wait_healthy(port, pid, timeout, log_file)
            return MongoServer(url=mongo_url(port), run_dir=run_dir, pid=pid)

        if port is None:
            port = process.free_port()
            process.write_json(state_file, {"version": MONGO_JAVA_SERVER_VERSION, "port": port})
        else:
            process.ensure_port_free(port, "the local store")
        _data_file(run_dir).parent.mkdir(exist_ok=True)
        _migrate_legacy(run_dir, java, classpath, log_file)
        argv = [
            java, *_JVM_OPTS,
            "-cp", classpath,
            _MAIN_CLASS, process.LOOPBACK, str(port), _marker(run_dir),
        ]  # fmt: skip
        pid = process.spawn_detached(argv, cwd=run_dir, log_file=log_file, pid_file=pid_file)
        try:
            _wait_healthy(port, pid, timeout, log_file)
        except BaseException:
            process.terminate(pid, timeout=10.0)
            pid_file.unlink(missing_ok=True)
            raise
        return MongoServer(url=mongo_url(port), run_dir=run_dir, pid=pid)


def _wait_healthy(port: int, pid: int, timeout: float, log_file: Path) -> None:
    def probe(budget: float) -> str | None:
        # A plain connect first: pymongo would wait out a whole server-selection round.
        if not process.tcp_open(port, timeout=min(budget, 1.0)):
            return f"nothing listening on port {port}"
        return probe_mongo(mongo_url(port), budget)

    process.wait_until_healthy(
        probe, pid=pid, what="the local store", timeout=timeout, log_file=log_file
    )


def stop_mongo(run_dir: Path, *, timeout: float = 15.0, graceful: bool = True) -> None:
    """Stop the store of ``run_dir``; nothing happens if it is not running.

    ``graceful=False`` kills it with SIGKILL at once (a crash: acknowledged writes survive);
    otherwise SIGTERM closes the MVStore cleanly, then SIGKILL after ``timeout`` seconds.
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


def mongo_log(run_dir: Path) -> Path:
    """The log file of the store of ``run_dir``."""
    return _files(run_dir.resolve())[2]
