"""The privacy operations console: server-rendered pages for tenants' DPOs and the operator.

Its own process (``python -m console``; ``make up`` starts it). It reads the services' read
models and the Kafka log through the services' declarations, as the ``leadtrail`` CLI does,
and acts only by publishing the events the CLI publishes (a legal hold placed or released)
or by redriving a dead letter as ``leadtrail dlq redrive`` does: it never writes a read
model. See ``docs/console.md``.
"""
