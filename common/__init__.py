"""Code shared by every service: Avro serde, Kafka client set-up, DB models, logging, metrics.

Kept small on purpose: anything used by one service only lives in that service's folder.
"""
