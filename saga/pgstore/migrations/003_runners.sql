-- Which definitions each node runs coordinators for, from its first census
-- of one until it leaves it. A node counts towards a definition's share of
-- the work while it is here and its lease lives.
CREATE TABLE {{schema}}.runners (
	node       text NOT NULL,
	definition text NOT NULL,
	PRIMARY KEY (definition, node)
);
