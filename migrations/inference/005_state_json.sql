-- The model state as json, not jsonb (issue 18's speed goals): every checkpoint rewrites the
-- states of the models its batch changed, and jsonb parses each one (every float into a
-- numeric) only for the state to be read back whole. Measured (bench/ai_cpu.py, throughput
-- shape): the checkpoint's PostgreSQL CPU about 30 % lower. Nothing queries into a state.
ALTER TABLE models ALTER COLUMN state TYPE json USING state::json;
