"""Network plumbing that receivers, exporters and extensions share: an embedded ASGI server,
endpoint parsing, and Kafka client settings (TLS, SASL), as the Collector's confighttp,
configgrpc and kafka config packages are shared by its components."""
