"""Apache Kafka for development and tests, fetched from Maven Central: KRaft nodes (broker and controller in one
JVM) on loopback ports, one or a cluster, plain or secured (SASL_SSL, SCRAM users, ACLs)."""

from services.ops.devstack.kafka.cluster import KafkaCluster, KafkaNode
from services.ops.devstack.kafka.jars import KAFKA_VERSION, kafka_classpath
from services.ops.devstack.kafka.launch import running_kafka
from services.ops.devstack.kafka.security import KafkaSecurity

__all__ = ["KAFKA_VERSION", "KafkaCluster", "KafkaNode", "KafkaSecurity", "kafka_classpath", "running_kafka"]
