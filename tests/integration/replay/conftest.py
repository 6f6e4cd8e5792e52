"""The replay tests run the retention-and-erasure lifecycle stack: all five services
in-process on real Kafka and the document store, sharing a fake clock."""

from __future__ import annotations

from tests.integration.retention_erasure.conftest import lifecycle

__all__ = ["lifecycle"]
