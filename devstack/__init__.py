"""The local development stack: real infrastructure without Docker (a Kafka broker and a
MongoDB-wire store, mongo-java-server, run as processes) and the five services beside them.

Developer tooling, not product: it is in neither the wheel nor the image. ``make up`` /
``python -m devstack`` start it (:mod:`devstack.cli`), ``deploy/local/*.sh`` drive the servers
alone, and :mod:`tests.infra` picks external, Docker or local servers for tests and benchmarks.
"""

from devstack.errors import InfraError
from devstack.kafka import KafkaServer, start_kafka, stop_kafka
from devstack.mongo_server import MongoServer, start_mongo, stop_mongo

__all__ = [
    "InfraError",
    "KafkaServer",
    "MongoServer",
    "start_kafka",
    "start_mongo",
    "stop_kafka",
    "stop_mongo",
]
