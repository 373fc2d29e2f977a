"""The workers' readiness probe finds each dependency's address in the variables the services read."""

import socket

from shared.probe import address_of, main


def test_addresses_come_from_the_connection_strings():
    args = ("kafka-0.kafka:9092,kafka-1.kafka:9092", "postgresql://u:p@db.internal/sluice", "redis://cache:6380/0")
    assert address_of("kafka", *args) == ("kafka-0.kafka", 9092)
    assert address_of("postgres", *args) == ("db.internal", 5432)
    assert address_of("redis", *args) == ("cache", 6380)


def test_the_probe_passes_while_the_broker_listens_and_fails_once_it_is_gone(monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    assert main(["kafka"]) == 0
    listener.close()
    assert main(["kafka"]) == 1
    assert main(["zookeeper"]) == 2
