package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sagaflow/sagaflow/saga"
)

// Forward queues a signal for the node that owns its instance, which finds
// it in its Inbox. The instance must exist and be unfinished.
func (s *Store) Forward(ctx context.Context, sig saga.ForwardedSignal) error {
	if sig.SagaID == "" || sig.Name == "" {
		return fmt.Errorf("%w: a forwarded signal needs a saga ID and a name", saga.ErrInvalidArgument)
	}
	if err := s.open(); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.q.forward, sig.SagaID, sig.Name, nullBytes(sig.Payload), sig.DedupKey)
	if err != nil {
		return fmt.Errorf("pgstore: forward a signal to %q: %w", sig.SagaID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("pgstore: forward a signal to %q: %w", sig.SagaID, err)
	} else if n == 1 {
		return nil
	}
	var finished bool
	switch err := s.db.QueryRowContext(ctx, s.q.finished, sig.SagaID).Scan(&finished); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %q", saga.ErrNotFound, sig.SagaID)
	case err != nil:
		return fmt.Errorf("pgstore: forward a signal to %q: %w", sig.SagaID, err)
	}
	return fmt.Errorf("%w: %q", saga.ErrFinished, sig.SagaID)
}

// Inbox returns at most max signals queued for instances of definition
// that this node owns, oldest first. Signals for an instance that ended
// while they were queued are included, for the caller to drop with
// Delivered, until pruning removes them (see Pruning in the package
// documentation).
func (s *Store) Inbox(ctx context.Context, definition string, max int) ([]saga.ForwardedSignal, error) {
	if max <= 0 {
		return nil, nil
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q.inbox, s.node, definition, max)
	if err != nil {
		return nil, fmt.Errorf("pgstore: inbox: %w", err)
	}
	defer rows.Close()
	var sigs []saga.ForwardedSignal
	for rows.Next() {
		var sig saga.ForwardedSignal
		if err := rows.Scan(&sig.ID, &sig.SagaID, &sig.Name, &sig.Payload, &sig.DedupKey); err != nil {
			return nil, fmt.Errorf("pgstore: inbox: %w", err)
		}
		sigs = append(sigs, sig)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: inbox: %w", err)
	}
	return sigs, nil
}

// Delivered deletes the queued signals with these IDs.
func (s *Store) Delivered(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.open(); err != nil {
		return err
	}
	var list strings.Builder
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			list.WriteString(", ")
		}
		fmt.Fprintf(&list, "$%d", i+1)
		args[i] = id
	}
	if _, err := s.db.ExecContext(ctx, s.q.delivered+"("+list.String()+")", args...); err != nil {
		return fmt.Errorf("pgstore: remove delivered signals: %w", err)
	}
	return nil
}
