"""Real infrastructure without Docker: a local Kafka broker and FerretDB, run as processes.

``python -m ops.infra`` (and ``deploy/local/*.sh``) drive it from the shell;
:mod:`ops.infra.testing` picks external, Docker or local servers for tests and benchmarks.
"""

from ops.infra.errors import InfraError
from ops.infra.ferretdb import FerretDBServer, start_ferretdb, stop_ferretdb
from ops.infra.kafka import KafkaServer, start_kafka, stop_kafka

__all__ = [
    "FerretDBServer",
    "InfraError",
    "KafkaServer",
    "start_ferretdb",
    "start_kafka",
    "stop_ferretdb",
    "stop_kafka",
]
