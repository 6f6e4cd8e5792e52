"""Real infrastructure without Docker: a local Kafka broker and a MongoDB-wire
store (mongo-java-server), run as processes.

``python -m ops.infra`` (and ``deploy/local/*.sh``) drive it from the shell;
:mod:`ops.infra.testing` picks external, Docker or local servers for tests and benchmarks.
"""

from ops.infra.errors import InfraError
from ops.infra.kafka import KafkaServer, start_kafka, stop_kafka
from ops.infra.mongo_server import MongoServer, start_mongo, stop_mongo

__all__ = [
    "InfraError",
    "KafkaServer",
    "MongoServer",
    "start_kafka",
    "start_mongo",
    "stop_kafka",
    "stop_mongo",
]
