"""MQTT entry point: an embedded amqtt broker whose publishes feed the ingestion API."""
