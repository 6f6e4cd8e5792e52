"""Running a Leadtrail service as a real separate process, for restart and end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from devstack.process import free_port, log_tail
from tests.helpers import eventually

__all__ = ["ServiceProcess"]


class ServiceProcess:
    """``python -m <module>`` with the given environment, on a fixed free port."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "LEADTRAIL_HTTP_PORT": str(self.port)}
        self.log = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, *, ready_within: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

        async def ready() -> bool | None:
            if self._process is not None and self._process.returncode is not None:
                raise AssertionError(
                    f"{self.module} exited with {self._process.returncode}:\n{log_tail(self.log)}"
                )
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    response = await client.get(f"{self.url}/readyz")
            except httpx.HTTPError:
                return None
            return True if response.status_code == 200 else None

        await eventually(ready, within=ready_within, what=f"{self.module} ready")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no commits, like a crashed machine."""
        await self._signal(signal.SIGKILL)

    async def stop(self) -> None:
        await self._signal(signal.SIGTERM)

    async def _signal(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        self._process = None
