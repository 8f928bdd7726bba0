-- Principals are namespaced (services/ingestion/grpc_api.py principal_of): an edge token's
-- subject is "jwt:<sub>", the MQTT gateway's stay "mqtt:<user>" / "mqtt-anonymous", so a
-- token whose sub is "mqtt:dev-42" no longer shares dev-42's keys. Keys stored before keep
-- their meaning: a subject the gateway could have written stays as it is (a token subject
-- of that shape, the attack this closes, is taken for the device's), every other non-empty
-- one was a token's and moves to "jwt:". The empty principal (auth off) is unchanged.
UPDATE idempotency_keys SET principal = 'jwt:' || principal
WHERE principal <> '' AND principal NOT LIKE 'mqtt:%' AND principal <> 'mqtt-anonymous';
