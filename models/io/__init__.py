"""The I/O corner of ``models``: state stores, the artifact store and the producer.

Everything else in ``models`` is pure; only this package talks to Redis, Kafka
or the disk.
"""
