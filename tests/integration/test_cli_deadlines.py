"""Operator commands facing a frozen Kafka broker or store: one ``error:`` line and exit 1, as a
real ``leadtrail`` process, never a hang or a traceback (DESIGN: every wait has a deadline)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from pathlib import Path

import pytest

from contracts import ALL_TOPICS
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from tests.infra import ServerControl

pytestmark = pytest.mark.integration

HANG_GUARD_S = 150.0
"""Far beyond every deadline (Kafka requests 15 s, store operations 2 s here): only a hang
reaches it, and fails the test."""


def _env(kafka_bootstrap: str, mongo_url: str, prefix: str, config_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LEADTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADTRAIL_MONGO_URL": mongo_url,
        "LEADTRAIL_MONGO_DB": f"it_cli_{uuid.uuid4().hex[:8]}",
        "LEADTRAIL_TOPIC_PREFIX": prefix,
        "LEADTRAIL_CONFIG_DIR": str(config_dir),
        "LEADTRAIL_KEK": base64.b64encode(os.urandom(32)).decode(),
        "LEADTRAIL_STORE_TIMEOUT_S": "2",
    }


async def _leadtrail(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    """Exit code and the ``error:`` lines of one ``leadtrail`` run."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("leadtrail")),
        *args,
        env=env,
        cwd=env["LEADTRAIL_CONFIG_DIR"],  # no .run/stack.env of a developer's stack here
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), HANG_GUARD_S)
    errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
    assert process.returncode is not None
    return process.returncode, errors


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    TenantDirectory(tmp_path).add("Acme", tenant_id="acme", default_region="IT")
    return tmp_path


async def test_kafka_commands_on_a_frozen_broker_print_one_error(
    kafka_bootstrap: str, mongo_url: str, kafka_control: ServerControl, config_dir: Path
) -> None:
    prefix = f"it-cli-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap, prefix, ALL_TOPICS)
    env = _env(kafka_bootstrap, mongo_url, prefix, config_dir)
    kafka_control.freeze()
    try:
        for args in (
            ["dlq", "list"],
            ["verify"],
            ["audit", "sub_0000000000000000", "--tenant", "acme"],
        ):
            code, errors = await _leadtrail(env, *args)
            assert code != 0, f"leadtrail {' '.join(args)} exited 0 on a frozen broker"
            assert len(errors) == 1, f"leadtrail {' '.join(args)}: {errors}"
    finally:
        kafka_control.thaw()


async def test_store_commands_on_a_frozen_store_print_one_error(
    kafka_bootstrap: str, mongo_url: str, mongo_control: ServerControl, config_dir: Path
) -> None:
    env = _env(kafka_bootstrap, mongo_url, f"it-cli-{uuid.uuid4().hex[:8]}.", config_dir)
    mongo_control.freeze()
    try:
        for args in (
            ["holds", "list", "--tenant", "acme"],
            ["export", "sub_0000000000000000", "--tenant", "acme"],
        ):
            code, errors = await _leadtrail(env, *args)
            assert code != 0, f"leadtrail {' '.join(args)} exited 0 on a frozen store"
            assert len(errors) == 1, f"leadtrail {' '.join(args)}: {errors}"
    finally:
        mongo_control.thaw()
