package pgstore

import (
	"context"
	"fmt"
)

// pruneBatch is the most rows of each table one pass of prune removes, so
// that a pass stays short however much has piled up; the rest goes at the
// next passes.
const pruneBatch = 1000

// prune removes what no node will ever use again, at most pruneBatch rows
// of each kind, in one statement:
//
//   - the lease of a node that expired more than LeaseTTL ago (by this
//     node's clock), as left by a process that crashed: such a node no
//     longer counts in a census nor owns anything, and the grace keeps the
//     row of a node whose renewals are only late. A node that wakes up
//     after that registers again at its next renewal, and counts again
//     from its next census;
//   - the runners rows of nodes that have no lease or one that expired
//     that long ago;
//   - the signals queued for instances that have finished, which their
//     owner would only drop, and which nobody reads if that owner stopped
//     before it did (a finished instance is never claimed). Signals of an
//     unfinished instance stay until a node that owns it records them,
//     even while no live node owns it.
//
// Every live node runs prune after each renewal of its lease (every
// LeaseTTL/3), so what is due goes within one renewal interval, or a few
// when more than pruneBatch rows of a kind are due. Rows that another
// node's prune has locked are skipped, so nodes never wait for each other.
func (s *Store) prune() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.ttl/3)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.q.prune, s.clock.Now().Add(-s.ttl), pruneBatch); err != nil {
		return fmt.Errorf("pgstore: prune: %w", err)
	}
	return nil
}

// pruneQuery returns the statement of prune for schema: $1 is the time
// before which a lease has been expired long enough, $2 the batch.
func pruneQuery(schema string) string {
	return `WITH stale AS (
			DELETE FROM ` + schema + `.nodes WHERE node IN (
				SELECT node FROM ` + schema + `.nodes WHERE expires_at < $1
				LIMIT $2 FOR UPDATE SKIP LOCKED)
		), strays AS (
			DELETE FROM ` + schema + `.runners WHERE (definition, node) IN (
				SELECT r.definition, r.node FROM ` + schema + `.runners AS r
				WHERE NOT EXISTS (
					SELECT 1 FROM ` + schema + `.nodes AS o
					WHERE o.node = r.node AND o.expires_at >= $1)
				LIMIT $2 FOR UPDATE SKIP LOCKED)
		)
		DELETE FROM ` + schema + `.signals WHERE id IN (
			SELECT s.id FROM ` + schema + `.signals AS s JOIN ` + schema + `.instances AS i USING (saga_id)
			WHERE i.finished
			LIMIT $2 FOR UPDATE OF s SKIP LOCKED)`
}
