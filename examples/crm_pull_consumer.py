"""Example CRM-side consumer of the pull feed (topic ``<prefix>crm-sync``).

    .venv/bin/python examples/crm_pull_consumer.py --tenant acme

Reads ``crm.lead_upserted`` and ``crm.lead_deleted`` for one tenant and applies them to a
(here: printed) CRM. The mapped field values are personal data, encrypted with the person's key;
decrypting needs the keyring (MongoDB) and the KEK, so run this only where the tenant's data
processor may run. After an erasure the key is gone: the upsert can't be read any more, and the
``crm.lead_deleted`` event tells you to delete your copy.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from aiokafka import AIOKafkaConsumer

from contracts import REGISTRY, EventEnvelope
from services.common.crypto import KeyWrapper, MongoDataKeyring, PiiCipher
from services.common.settings import CommonSettings
from services.common.store import database, make_mongo_client


async def consume(tenant: str, group: str) -> None:
    settings = CommonSettings()  # LEADTRAIL_* from the environment or .run/stack.env
    mongo = make_mongo_client(settings, app_name="crm-pull-example")
    keyring = MongoDataKeyring(
        database(mongo, settings)["data_keys"], KeyWrapper(settings.kek_bytes(), settings.kek_id)
    )
    cipher = PiiCipher(keyring)
    consumer = AIOKafkaConsumer(
        settings.topic("crm-sync"),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            event = REGISTRY.decode(EventEnvelope.model_validate_json(record.value)).envelope
            if event.tenant_id == tenant:
                if event.type == "crm.lead_upserted":
                    fields = await cipher.decrypt(event)
                    values = None if fields is None else fields["values"]
                    print(f"upsert {event.data['lead_id']}: {values or 'erased meanwhile'}")
                elif event.type == "crm.lead_deleted":
                    print(f"delete {event.data['lead_id']}")
            await consumer.commit()  # after applying: at-least-once, so apply idempotently
    finally:
        await consumer.stop()
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a tenant's CRM pull feed.")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--group", default=f"crm-pull-{os.getpid()}")
    args = parser.parse_args()
    asyncio.run(consume(args.tenant, args.group))


if __name__ == "__main__":
    main()
