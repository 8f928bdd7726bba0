-- "Where is event X" lists the deliveries an event caused.
CREATE INDEX deliveries_event_id_idx ON deliveries (event_id);
