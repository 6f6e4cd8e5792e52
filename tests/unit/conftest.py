from __future__ import annotations

import base64
import os

import pytest


@pytest.fixture
def kek() -> bytes:
    return os.urandom(32)


@pytest.fixture
def kek_b64(kek: bytes) -> str:
    return base64.b64encode(kek).decode()
