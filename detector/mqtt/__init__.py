"""Alerts to the management centre over MQTT, through a durable local outbox (docs/mqtt.md).

topics.py     topic names of one camera
outbox.py     SQLite queue: alerts are written here before they are published
connection.py paho client setup, TLS, the CONNACK handshake, error messages without secrets
publisher.py  background thread: connect, drain the outbox, zone state, health, reconnect
channel.py    the Sink the pipeline emits to (outbox + publisher), zone states, delivery figures for health
backlog.py    `detector outbox CONFIG [--drain | --purge]`
listen.py     `detector listen`
"""
