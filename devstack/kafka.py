"""A single-node Apache Kafka (KRaft, combined broker + controller) run from Maven jars.

Layout of a run directory::

    kafka.json        ports and cluster id, fixed on first start so restarts reuse them
    kafka.pid         pid of the running JVM
    kafka.log         everything the JVM and the storage formatter printed
    server.properties, log4j2.xml   rewritten on every start
    data/             log.dirs (and the KRaft metadata log)

The jars are resolved once by Maven from ``deploy/local/kafka/pom.xml`` into
``<cache>/kafka/<version>/libs``; a marker holding the pom's hash says the copy completed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from devstack import process
from devstack.errors import InfraError
from devstack.paths import cache_root, repo_root

KAFKA_VERSION = "4.1.1"
_MAIN_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_MARKER = ".leadtrail-complete"
_JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class KafkaServer:
    """A running local broker."""

    bootstrap: str
    run_dir: Path
    pid: int


@dataclass(frozen=True)
class _State:
    port: int
    controller_port: int
    cluster_id: str

    @property
    def bootstrap(self) -> str:
        return f"{process.LOOPBACK}:{self.port}"


def _files(run_dir: Path) -> tuple[Path, Path, Path]:
    """``(state file, pid file, log file)`` of a run directory."""
    return run_dir / "kafka.json", run_dir / "kafka.pid", run_dir / "kafka.log"


def _marker(run_dir: Path) -> str:
    """What identifies our JVM in ``/proc/<pid>/cmdline``: its properties file path."""
    return str(run_dir / "server.properties")


# ---------------------------------------------------------------------------- installation


def _pom() -> Path:
    pom = repo_root() / "deploy" / "local" / "kafka" / "pom.xml"
    if not pom.is_file():
        raise InfraError(f"Kafka pom not found at {pom}; run from a Leadtrail checkout")
    return pom


def kafka_libs() -> Path:
    """The directory of broker jars, resolving it with Maven first if needed."""
    pom = _pom()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    home = cache_root() / "kafka" / KAFKA_VERSION
    libs = home / "libs"
    if _libs_complete(libs, digest):
        return libs
    with process.file_lock(home / ".lock"):
        if _libs_complete(libs, digest):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (mvn) is needed once to fetch the Kafka jars; not on PATH")
        # Copy into a fresh directory and swap it in, so jars from an older pom never linger
        # on the classpath next to their replacements.
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        try:
            process.run_tool(
                [
                    mvn, "-q", "-B", "-f", str(pom),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ],
                what="resolving the Kafka jars with Maven",
                timeout=900,
            )  # fmt: skip
            if not (staging / _MAIN_JAR).is_file():
                raise InfraError(f"Maven finished but {_MAIN_JAR} is missing from {staging}")
            (staging / _MARKER).write_text(digest + "\n")
            staging.chmod(0o755)  # mkdtemp makes it private
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


def _libs_complete(libs: Path, digest: str) -> bool:
    try:
        return (libs / _MARKER).read_text().strip() == digest and (libs / _MAIN_JAR).is_file()
    except OSError:
        return False


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java 17+ is needed to run Kafka; no java on PATH or in JAVA_HOME")
    return java


# ---------------------------------------------------------------------------- configuration


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 random bytes).

    Same as ``kafka-storage random-uuid``, which rejects ids starting with ``-`` because
    command lines would read them as options.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _load_state(state_file: Path) -> _State | None:
    data = process.read_json(state_file)
    if data is None:
        return None
    port, controller_port, cluster_id = (
        data.get("port"),
        data.get("controller_port"),
        data.get("cluster_id"),
    )
    if isinstance(port, int) and isinstance(controller_port, int) and isinstance(cluster_id, str):
        return _State(port, controller_port, cluster_id)
    return None


def _server_properties(run_dir: Path, state: _State) -> str:
    host = process.LOOPBACK
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{host}:{state.port},CONTROLLER://{host}:{state.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{state.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.bootstrap.servers": f"{host}:{state.controller_port}",
        "log.dirs": str(run_dir / "data"),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A single node: no rebalance grace period, and small internal topics, which are
        # created on first use (50 partitions each by default, several seconds here).
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.num.partitions": "5",
        # Heartbeat faster so the broker is unfenced sooner after the controller is up, and
        # expire a crashed incarnation sooner: after a SIGKILL the controller refuses the new
        # registration until the old session times out (9 s by default).
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
        # Fewer threads and a small cleaner buffer suit a 2-core machine and a 512 MB heap.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


_LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by devstack/kafka.py: everything to stdout, which goes to kafka.log. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
    <!-- Full config dumps at every start and for every internal client. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
"""


# ---------------------------------------------------------------------------- health


def run_in_own_loop(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a new event loop in a worker thread.

    The helpers here are synchronous but may be called from code that is already inside an
    event loop (an async test restarting the broker), where ``asyncio.run`` would refuse.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadtrail-infra") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def probe_kafka(bootstrap: str, budget: float = 5.0) -> str | None:
    """``None`` if a metadata request to ``bootstrap`` lists a live broker, else why not."""
    host, _, port = bootstrap.rpartition(":")
    # A plain connect first: aiokafka logs an ERROR for every refused connection.
    if not process.tcp_open(int(port), host, timeout=min(budget, 1.0)):
        return f"nothing listening on {bootstrap}"

    async def metadata() -> str | None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="leadtrail-infra-probe",
            request_timeout_ms=max(500, int(budget * 1000)),
        )
        try:
            await asyncio.wait_for(admin.start(), budget)
            cluster: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), budget)
        except Exception as exc:  # any failure only means "not healthy yet"
            return f"metadata request failed: {type(exc).__name__}: {exc}"
        finally:
            await admin.close()
        if not cluster.get("brokers"):
            return "metadata lists no live broker yet"
        return None

    return run_in_own_loop(metadata)


# ---------------------------------------------------------------------------- lifecycle


def running_kafka(run_dir: Path) -> KafkaServer | None:
    """The server recorded in ``run_dir`` if its process is alive (health not checked)."""
    run_dir = run_dir.resolve()
    state_file, pid_file, _ = _files(run_dir)
    state = _load_state(state_file)
    pid = process.read_pid(pid_file, marker=_marker(run_dir))
    if state is None or pid is None:
        return None
    return KafkaServer(bootstrap=state.bootstrap, run_dir=run_dir, pid=pid)


def start_kafka(run_dir: Path, *, timeout: float = 90.0) -> KafkaServer:
    """Start (or adopt) the broker of ``run_dir`` and wait until it answers metadata requests.

    Idempotent: if the broker of ``run_dir`` is already running it is only health-checked.
    The first start picks ports and a cluster id and formats the storage; later starts reuse
    them, so topics and offsets survive a restart. Raises :class:`InfraError` (with the log
    tail) if the broker does not become healthy within ``timeout`` seconds; a broker started
    by this call is stopped again in that case.
    """
    run_dir = run_dir.resolve()
    libs = kafka_libs()
    java = java_executable()
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, pid_file, log_file = _files(run_dir)
    with process.file_lock(run_dir / ".lock"):
        state = _load_state(state_file)
        pid = process.read_pid(pid_file, marker=_marker(run_dir))
        if state is not None and pid is not None:
            _wait_healthy(state.bootstrap, pid, timeout, log_file)
            return KafkaServer(bootstrap=state.bootstrap, run_dir=run_dir, pid=pid)

        if state is None:
            if (run_dir / "data" / "meta.properties").exists():
                raise InfraError(
                    f"{run_dir} holds Kafka data but no {state_file.name} (its ports and "
                    "cluster id); delete the run directory to start afresh"
                )
            state = _State(process.free_port(), process.free_port(), new_cluster_id())
            process.write_json(state_file, _state_json(state))
        else:
            process.ensure_port_free(state.port, "Kafka")
            process.ensure_port_free(state.controller_port, "Kafka controller")

        properties = run_dir / "server.properties"
        properties.write_text(_server_properties(run_dir, state))
        log4j = run_dir / "log4j2.xml"
        log4j.write_text(_LOG4J2_XML)
        classpath = f"{libs}/*"
        if not (run_dir / "data" / "meta.properties").is_file():
            _format_storage(java, classpath, properties, state.cluster_id, log_file)

        argv = [
            java, *_JVM_OPTS,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp", classpath,
            "kafka.Kafka", str(properties),
        ]  # fmt: skip
        pid = process.spawn_detached(argv, cwd=run_dir, log_file=log_file, pid_file=pid_file)
        try:
            _wait_healthy(state.bootstrap, pid, timeout, log_file)
        except BaseException:
            process.terminate(pid, timeout=10.0)
            pid_file.unlink(missing_ok=True)
            raise
        return KafkaServer(bootstrap=state.bootstrap, run_dir=run_dir, pid=pid)


def _wait_healthy(bootstrap: str, pid: int, timeout: float, log_file: Path) -> None:
    process.wait_until_healthy(
        lambda budget: probe_kafka(bootstrap, budget),
        pid=pid, what="Kafka", timeout=timeout, log_file=log_file,
    )  # fmt: skip


def _state_json(state: _State) -> dict[str, object]:
    return {
        "version": KAFKA_VERSION,
        "port": state.port,
        "controller_port": state.controller_port,
        "cluster_id": state.cluster_id,
        "bootstrap": state.bootstrap,
    }


def _format_storage(
    java: str, classpath: str, properties: Path, cluster_id: str, log_file: Path
) -> None:
    """Format ``log.dirs`` as a single-voter (standalone) KRaft quorum."""
    output = process.run_tool(
        [
            java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool",
            "format", "--standalone", "-t", cluster_id, "-c", str(properties),
        ],
        what="formatting Kafka storage",
        timeout=120,
    )  # fmt: skip
    with log_file.open("a") as log:
        log.write(output)


def stop_kafka(run_dir: Path, *, timeout: float = 30.0, graceful: bool = True) -> None:
    """Stop the broker of ``run_dir``; nothing happens if it is not running.

    ``graceful=False`` kills it with SIGKILL at once (a crash); otherwise SIGTERM gives it
    ``timeout`` seconds for a controlled shutdown before SIGKILL.
    """
    run_dir = run_dir.resolve()
    _, pid_file, _ = _files(run_dir)
    if not run_dir.is_dir():
        return
    with process.file_lock(run_dir / ".lock"):
        pid = process.read_pid(pid_file, marker=_marker(run_dir))
        if pid is not None:
            process.terminate(pid, timeout=timeout, graceful=graceful)
        pid_file.unlink(missing_ok=True)


def kafka_log(run_dir: Path) -> Path:
    """The log file of the broker of ``run_dir``."""
    return _files(run_dir.resolve())[2]
