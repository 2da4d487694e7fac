package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sagaflow/sagaflow/saga"
)

// Appends are written in batches: a few writer goroutines each take every
// append waiting at that moment (up to maxBatch) and write them in one
// statement, so a busy process pays one round trip and one commit for many
// instances. Each append in the statement keeps its own conditions (the
// sequence number, the owner and the epoch); those that fail them are
// left out and the rest are written. An idle process writes each append
// at once.
const (
	writers  = 4
	maxBatch = 256
)

// errNotApplied marks an append that its batch left out; the caller finds
// out why.
var errNotApplied = errors.New("pgstore: append not applied")

// appendReq is one Append waiting for a writer.
type appendReq struct {
	ctx    context.Context
	sagaID string
	head   []byte // JSON object: saga_id, expected, last_seq, finished, epoch, run
	rows   []byte // JSON objects, comma-separated: saga_id, seq, meta, state, payload
	done   chan error
}

// batchHead and batchRow are the JSON shapes the batch statement reads
// with json_to_recordset.
type batchHead struct {
	SagaID   string `json:"saga_id"`
	Expected uint64 `json:"expected"`
	LastSeq  uint64 `json:"last_seq"`
	Finished bool   `json:"finished"`
	Epoch    int64  `json:"epoch"`
	Run      string `json:"run"`
}

type batchRow struct {
	SagaID  string          `json:"saga_id"`
	Seq     uint64          `json:"seq"`
	Meta    json.RawMessage `json:"meta"`
	State   []byte          `json:"state"`   // base64; null for nil
	Payload []byte          `json:"payload"` // base64; null for nil
}

// newAppendReq encodes an append for the batch statement.
func newAppendReq(ctx context.Context, sagaID string, expected uint64, epoch int64, events []saga.Event) (*appendReq, error) {
	last := events[len(events)-1]
	head, err := json.Marshal(batchHead{
		SagaID: sagaID, Expected: expected, LastSeq: last.Seq, Finished: last.Ends(), Epoch: epoch, Run: events[0].Run,
	})
	if err != nil {
		return nil, err
	}
	rows, err := encodeRows(sagaID, events)
	if err != nil {
		return nil, err
	}
	return &appendReq{ctx: ctx, sagaID: sagaID, head: head, rows: rows, done: make(chan error, 1)}, nil
}

// encodeRows encodes events as comma-separated JSON objects for
// insertEvents. encoding/json writes State and Payload in base64, and nil
// as null, so that the database keeps them byte for byte and nil apart
// from empty.
func encodeRows(sagaID string, events []saga.Event) ([]byte, error) {
	var rows []byte
	for i := range events {
		e := events[i]
		row := batchRow{SagaID: sagaID, Seq: e.Seq, State: e.State, Payload: e.Payload}
		e.State, e.Payload = nil, nil
		var err error
		if row.Meta, err = json.Marshal(&e); err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", saga.ErrInvalidEvent, i, err)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", saga.ErrInvalidEvent, i, err)
		}
		if i > 0 {
			rows = append(rows, ',')
		}
		rows = append(rows, b...)
	}
	return rows, nil
}

// insertEvents returns the statement part that inserts the event rows in
// the JSON array parameter param, for the sagas that the subquery ok
// selects.
func insertEvents(schema, param, ok string) string {
	return `INSERT INTO ` + schema + `.events (saga_id, seq, meta, state, payload)
		SELECT e.saga_id, e.seq, e.meta, decode(e.state, 'base64'), decode(e.payload, 'base64')
		FROM json_to_recordset(` + param + `::json)
			AS e (saga_id text, seq bigint, meta json, state text, payload text)
		WHERE e.saga_id IN (` + ok + `)`
}

// submit hands r to a writer and waits for its batch, or for r's context
// to end: then the append may yet be written, as when a connection is lost
// after a commit, and a later append of the instance finds out.
func (s *Store) submit(r *appendReq) error {
	select {
	case s.appends <- r:
	case <-s.quit:
		return saga.ErrClosed
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// writeLoop is one writer: it takes the appends waiting and writes them
// together, until Close.
func (s *Store) writeLoop() {
	defer s.writing.Done()
	batch := make([]*appendReq, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.appends:
			batch = append(batch, r)
		case <-s.quit:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-s.appends:
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.write(batch)
	}
}

// write runs the batch, in one statement unless it holds two appends to
// one instance (racing writers; at most one of them can succeed): those
// wait for a statement of their own.
func (s *Store) write(batch []*appendReq) {
	var later []*appendReq
	for len(batch) > 0 {
		seen := make(map[string]bool, len(batch))
		now := batch[:0:0]
		for _, r := range batch {
			switch {
			case r.ctx.Err() != nil:
				r.done <- r.ctx.Err()
			case seen[r.sagaID]:
				later = append(later, r)
			default:
				seen[r.sagaID] = true
				now = append(now, r)
			}
		}
		s.writeOnce(now)
		batch, later = later, nil
	}
}

// writeOnce runs one batch statement and tells each append how it went.
func (s *Store) writeOnce(batch []*appendReq) {
	if len(batch) == 0 {
		return
	}
	var heads, rows []byte
	heads, rows = append(heads, '['), append(rows, '[')
	for i, r := range batch {
		if i > 0 {
			heads, rows = append(heads, ','), append(rows, ',')
		}
		heads, rows = append(heads, r.head...), append(rows, r.rows...)
	}
	heads, rows = append(heads, ']'), append(rows, ']')

	applied, err := s.runBatch(string(heads), string(rows))
	for _, r := range batch {
		switch {
		case err != nil:
			r.done <- fmt.Errorf("pgstore: append to %q: %w", r.sagaID, err)
		case applied[r.sagaID]:
			r.done <- nil
		default:
			r.done <- errNotApplied
		}
	}
}

// runBatch executes the batch statement and returns the saga IDs whose
// appends it applied.
func (s *Store) runBatch(heads, rows string) (map[string]bool, error) {
	res, err := s.db.QueryContext(s.ctx, s.q.batch, heads, s.node, rows)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	applied := make(map[string]bool)
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return nil, err
		}
		applied[id] = true
	}
	return applied, res.Err()
}

// batchQuery returns the statement that applies a batch of appends:
// parameter 1 is the JSON array of heads, 2 the node, 3 the JSON array of
// event rows. It returns the saga IDs whose appends it applied.
func batchQuery(schema string) string {
	return `WITH req AS (
		SELECT * FROM json_to_recordset($1::json)
			AS r (saga_id text, expected bigint, last_seq bigint, finished boolean, epoch bigint, run text)
	), u AS (
		UPDATE ` + schema + `.instances AS i SET last_seq = r.last_seq, finished = r.finished
		FROM req AS r
		WHERE i.saga_id = r.saga_id AND i.last_seq = r.expected AND NOT i.finished
			AND i.owner = $2 AND i.epoch = r.epoch AND i.run = r.run
		RETURNING i.saga_id
	), ins AS (
		` + insertEvents(schema, "$3", "SELECT saga_id FROM u") + `
	)
	SELECT saga_id FROM u`
}
