"""The ingest benchmark's ceiling: an HTTP endpoint that does nothing but produce its body.

    BARE_KAFKA_BOOTSTRAP=127.0.0.1:9092 BARE_TOPIC=t uvicorn bench.bare_http_producer:app

``POST /v1/leads`` parses the JSON body and sends it to ``BARE_TOPIC`` with an ``acks=all``
aiokafka producer (linger 0, as the services'), then answers 202. No authentication, no
validation, no store, no encryption: the same web framework, server and Kafka client as
lead-ingest, and nothing else. `bench/ingest.py` runs it as its own process, drives it with
the client and concurrency it drives lead-ingest with, and reports its rate beside lead-ingest's
and the bare producer's: no HTTP ingest written on this stack can go faster on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ["BARE_KAFKA_BOOTSTRAP"], acks="all", linger_ms=0
    )
    await producer.start()
    app.state.producer = producer
    try:
        yield
    finally:
        await producer.stop()


app = FastAPI(lifespan=_lifespan)
_TOPIC = os.environ.get("BARE_TOPIC", "bench-bare-http")


@app.post("/v1/leads")
async def post_lead(request: Request) -> JSONResponse:
    body = await request.body()
    json.loads(body)
    await request.app.state.producer.send_and_wait(_TOPIC, body)
    return JSONResponse({"accepted": True}, status_code=202)


@app.get("/readyz")
async def ready() -> JSONResponse:
    return JSONResponse({"ready": True})
