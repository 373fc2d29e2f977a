"""Where the operator commands reach Kafka: the bootstrap servers from --kafka, KAFKA_BOOTSTRAP_SERVERS or the
config file, and the security settings from the usual KAFKA_* variables (sluice.client.kafka_auth)."""

import argparse
import os

from sluice.cli.common import config
from sluice.client.kafka_auth import KafkaAuth, KafkaConnection


def kafka_connection(args: argparse.Namespace) -> KafkaConnection:
    return KafkaConnection(bootstrap_servers=config(args).kafka_bootstrap_servers, auth=KafkaAuth.from_env(os.environ))
