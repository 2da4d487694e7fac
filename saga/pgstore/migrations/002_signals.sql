-- Signals on their way to the process that owns their instance, which
-- takes them in id order and deletes them once recorded.
CREATE TABLE {{schema}}.signals (
	id        bigserial PRIMARY KEY,
	saga_id   text      NOT NULL,
	name      text      NOT NULL,
	payload   bytea,
	dedup_key text      NOT NULL
);

CREATE INDEX signals_saga ON {{schema}}.signals (saga_id);
