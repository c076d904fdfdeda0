"""What every hubnet service shares: the event contract and the wiring to Kafka and PostgreSQL."""
