"""The ``plba`` command and the local tooling around it (the embedded Kafka broker)."""

__version__ = "0.1.0"
