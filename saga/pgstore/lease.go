package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/sagaflow/sagaflow/saga"
)

// renewLoop extends this node's lease every third of its TTL until Close,
// and after each renewal prunes what crashed nodes and finished instances
// left behind (see prune). A renewal that fails is logged and tried again
// at the next tick, and that tick prunes nothing; if none succeeds before
// the lease expires, other nodes may claim this node's instances, and its
// appends to them fail with saga.ErrFenced.
func (s *Store) renewLoop() {
	defer s.renewed.Done()
	tick := s.clock.NewTicker(s.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C():
		}
		if err := s.renew(); err != nil {
			s.log.LogAttrs(context.Background(), slog.LevelWarn, "pgstore: lease renewal failed",
				slog.String("node", s.node), slog.Any("error", err))
			continue
		}
		if err := s.prune(); err != nil {
			s.log.LogAttrs(context.Background(), slog.LevelWarn, "pgstore: pruning failed, will try again",
				slog.String("node", s.node), slog.Any("error", err))
		}
	}
}

// renew extends the lease, registering the node again if its row is gone.
func (s *Store) renew() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.ttl/3)
	defer cancel()
	expiry := s.clock.Now().Add(s.ttl)
	res, err := s.db.ExecContext(ctx, s.q.renew, s.node, expiry)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := s.db.ExecContext(ctx, s.q.join, s.node, expiry); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.expiry = expiry
	s.mu.Unlock()
	return nil
}

// Claim takes ownership of at most max unfinished instances of definition
// whose owner's lease has expired or who were released, oldest first. Each
// claimed instance's epoch grows by one, which fences its previous owner.
// Claimers skip rows another claimer has locked, so they never wait for
// each other.
func (s *Store) Claim(ctx context.Context, definition string, max int) ([]string, error) {
	if max <= 0 {
		return nil, nil
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q.claim, s.node, definition, s.clock.Now(), max)
	if err != nil {
		return nil, fmt.Errorf("pgstore: claim: %w", err)
	}
	defer rows.Close()
	type claimed struct {
		id    string
		epoch int64
		n     int64
	}
	var got []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.id, &c.epoch, &c.n); err != nil {
			return nil, fmt.Errorf("pgstore: claim: %w", err)
		}
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: claim: %w", err)
	}
	slices.SortFunc(got, func(a, b claimed) int { return int(a.n - b.n) })
	ids := make([]string, len(got))
	s.mu.Lock()
	for i, c := range got {
		ids[i] = c.id
		s.owned[c.id] = c.epoch
	}
	s.mu.Unlock()
	return ids, nil
}

// Census counts the work on definition across the nodes: the live nodes
// that run it (those that have taken a census of it and not left it since,
// this one included), its unfinished instances, and how many of those no
// live node owns.
func (s *Store) Census(ctx context.Context, definition string) (saga.Census, error) {
	if definition == "" {
		return saga.Census{}, fmt.Errorf("%w: empty definition name", saga.ErrInvalidArgument)
	}
	if err := s.open(); err != nil {
		return saga.Census{}, err
	}
	var others, unfinished, waiting int
	err := s.db.QueryRowContext(ctx, s.q.census, s.node, definition, s.clock.Now()).
		Scan(&others, &unfinished, &waiting)
	if err != nil {
		return saga.Census{}, fmt.Errorf("pgstore: census of %s: %w", definition, err)
	}
	return saga.Census{Processes: others + 1, Unfinished: unfinished, Waiting: waiting}, nil
}

// Leave stops counting this node among those that run definition, until
// its next Census for it.
func (s *Store) Leave(ctx context.Context, definition string) error {
	if definition == "" {
		return fmt.Errorf("%w: empty definition name", saga.ErrInvalidArgument)
	}
	if err := s.open(); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.q.unrun, s.node, definition); err != nil {
		return fmt.Errorf("pgstore: leave %s: %w", definition, err)
	}
	return nil
}

// Release gives up this node's ownership of the instances, so that any
// node may claim them at once. IDs it does not own are ignored.
func (s *Store) Release(ctx context.Context, sagaIDs []string) error {
	if err := s.open(); err != nil {
		return err
	}
	var errs []error
	for _, id := range sagaIDs {
		if _, err := s.db.ExecContext(ctx, s.q.release, s.node, id); err != nil {
			errs = append(errs, fmt.Errorf("pgstore: release %q: %w", id, err))
			continue
		}
		s.disown(id)
	}
	return errors.Join(errs...)
}

// Close stops renewing the lease, hands back every instance this node
// still owns, and removes the node from the lease table, so that other
// nodes claim its instances without waiting for expiry. The *sql.DB stays
// open. Calls after the first return nil; other methods fail with
// saga.ErrClosed. Appends still in flight are cancelled and fail (they
// may or may not have been written), so that a database that has stopped
// answering does not hold Close up; handing back gives up after LeaseTTL,
// and the instances then wait for the lease to expire.
func (s *Store) Close() error {
	if !s.shut() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
	defer cancel()
	return s.leave(ctx)
}

// shut marks the store closed and stops the renewals; it reports whether
// this call did it.
func (s *Store) shut() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.cancel() // a batch waiting for the database waits no more
	s.writing.Wait()
	s.stopRenewing()
	return true
}

// stopRenewing stops the renewals and waits for the last one to finish.
func (s *Store) stopRenewing() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.renewed.Wait()
}

// leave hands back the node's instances and deletes its lease.
func (s *Store) leave(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgstore: close: %w", err)
	}
	defer tx.Rollback() // does nothing after Commit
	if _, err := tx.ExecContext(ctx, s.q.releaseAll, s.node); err != nil {
		return fmt.Errorf("pgstore: close: hand back instances: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q.leave, s.node); err != nil {
		return fmt.Errorf("pgstore: close: %w", err)
	}
	if err := tx.Commit(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("pgstore: close: %w", err)
	}
	return nil
}
