-- Processes that run coordinators, each with a lease it renews while it
-- lives. An instance whose owner has no row, or an expired one, can be
-- claimed by another process.
CREATE TABLE {{schema}}.nodes (
	node       text        PRIMARY KEY,
	expires_at timestamptz NOT NULL
);

-- One row per instance: where its log ends, whether it has ended, and who
-- may write it. epoch is the fencing token: it grows on every claim, and
-- an append must name the current one.
CREATE TABLE {{schema}}.instances (
	saga_id    text    PRIMARY KEY,
	n          bigserial,
	definition text    NOT NULL,
	run        text    NOT NULL,
	last_seq   bigint  NOT NULL,
	finished   boolean NOT NULL,
	owner      text,
	epoch      bigint  NOT NULL
);

CREATE INDEX instances_unfinished ON {{schema}}.instances (definition, n) WHERE NOT finished;

-- The logs. meta is the event as JSON without its state and payload, which
-- are kept byte for byte beside it.
CREATE TABLE {{schema}}.events (
	saga_id text   NOT NULL,
	seq     bigint NOT NULL,
	meta    json   NOT NULL,
	state   bytea,
	payload bytea,
	PRIMARY KEY (saga_id, seq)
);
