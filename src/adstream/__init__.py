"""adstream: real-time ad analytics on Kafka, Flink, Spark, Iceberg and DuckDB."""

__version__ = "0.1.0"
