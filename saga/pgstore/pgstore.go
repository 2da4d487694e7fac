// Package pgstore is a saga.Store on PostgreSQL, for services that run
// several processes (replicas) against one database and share the sagas
// between them.
//
// It works through database/sql: the caller brings the driver and the
// *sql.DB (for example github.com/jackc/pgx/v5/stdlib), and this package
// imports none. Open creates its tables in a schema of their own (by
// default "sagaflow") and upgrades them, safely when several processes
// start at once.
//
// # Ownership
//
// Every unfinished instance is owned by one process (one Store) at a time.
// A Store is a node with a lease that it renews every third of LeaseTTL
// while it is open. An instance's row names its owner and an epoch, the
// fencing token: Append succeeds only if the database still names this
// node and this epoch, in the same statement that writes the events, so a
// process that was paused or cut off and wakes up after another took over
// cannot write a thing (its Append fails with saga.ErrFenced).
//
// # Spreading the work
//
// Each coordinator counts the work on its definition every claim interval
// (Census): the live nodes that run it and its unfinished instances, whose
// quotient, rounded up, is each node's share. A node that already holds a
// quarter more than its share offers a new instance (Offer) instead of
// running it: the row has no owner, and the first node with room below its
// share claims it, at its next claim interval or as soon as one of its
// instances ends. Otherwise the process that starts an instance owns it.
// Claims also stop at the share, so the survivors of a crash split its
// orphans between them. A stopped coordinator leaves the count (Leave);
// one that stops counting for longer than LeaseTTL drops out of it.
//
// # Taking over
//
// When a node's lease expires
// (it died, or cannot reach the database), or it releases its instances
// (Release, or Close on a graceful shutdown), other nodes take them over
// with Claim, which bumps each instance's epoch and uses SKIP LOCKED so
// that claimers never wait for one another. A saga.Coordinator calls Claim
// at Startup and every Config.ClaimInterval, and resumes what it claims
// exactly as crash recovery does; a stopped one releases what it holds.
// An orphaned instance therefore waits at most LeaseTTL plus the claim
// interval after its owner stopped renewing, and only the claim interval
// after a graceful shutdown.
//
// Lease times are read on each process's clock, so clocks of the processes
// must agree to well within LeaseTTL. Fencing does not depend on clocks: a
// claim always bumps the epoch.
//
// # Delivery between processes
//
// Nodes find work by polling (Census and Claim), not by LISTEN/NOTIFY,
// which database/sql cannot receive without a driver: the delay before an
// offered, released or orphaned instance moves is bounded by the claim
// interval.
// Reads (Load, and so Coordinator.Get and Events) work on every node. A
// signal sent to a node that does not own its instance is queued in the
// database (Forward) and recorded by the owner at its next claim interval
// (Inbox, Delivered). Retry of a stuck instance must go to its owner.
//
// # Pruning
//
// After each renewal of its lease, a node removes what no node will use
// again, at most a thousand rows of each kind per pass: the lease and the
// census entries of a node whose lease expired more than LeaseTTL ago (a
// process that crashed; one that was only paused that long registers
// again at its next renewal), and the signals queued for instances that
// have finished. Signals for an unfinished instance stay until a node that
// owns it records them, even while its owner is dead and before another
// claims it. Instances and their logs are never removed.
package pgstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// ErrSchemaTooNew is returned by Open when the database schema was made by
// a newer version of this package.
var ErrSchemaTooNew = errors.New("pgstore: schema is newer than this package")

// Options configures Open. The zero value works.
type Options struct {
	// Schema is the PostgreSQL schema that holds the store's tables,
	// created if missing. Lower-case letters, digits and underscores,
	// starting with a letter or underscore; defaults to "sagaflow".
	Schema string

	// Node names this process in the lease table. Defaults to a random
	// UUID. A stable name lets a restarted process take back at once what
	// its previous run owned, instead of waiting for that lease to expire;
	// two live processes must never share one.
	Node string

	// LeaseTTL is how long a node's lease lasts without renewal; it is
	// renewed every LeaseTTL/3. A lease that has been expired for longer
	// than the LeaseTTL of a live node is removed by that node (see
	// Pruning in the package documentation). Defaults to 10s.
	LeaseTTL time.Duration

	// Clock times leases. Defaults to clock.Real().
	Clock clock.Clock

	// Logger receives failed renewals. Defaults to slog.Default().
	Logger *slog.Logger
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Store is a saga.Store and saga.Claimer on PostgreSQL. It is safe for
// concurrent use. Create one per process and share it between that
// process's coordinators.
type Store struct {
	db    *sql.DB
	opts  Options
	node  string
	ttl   time.Duration
	clock clock.Clock
	log   *slog.Logger
	q     queries

	mu     sync.Mutex
	owned  map[string]int64 // unfinished instances this node owns, by epoch
	closed bool
	expiry time.Time // of this node's lease, as last renewed

	stop     chan struct{} // closed to stop the renewals
	stopOnce sync.Once
	renewed  sync.WaitGroup

	appends chan *appendReq // to the writers
	quit    chan struct{}   // closed at Close to stop the writers
	writing sync.WaitGroup
	ctx     context.Context // of the writers' statements; cancelled at Close
	cancel  context.CancelFunc
}

var _ saga.Claimer = (*Store)(nil)

// Open creates or upgrades the schema, registers this node with a fresh
// lease, and starts renewing it. Instances that a previous run under the
// same Node owned are handed back for claiming. Close the Store when done;
// db stays open (it belongs to the caller).
func Open(ctx context.Context, db *sql.DB, opts Options) (*Store, error) {
	switch {
	case db == nil:
		return nil, fmt.Errorf("%w: nil *sql.DB", saga.ErrInvalidArgument)
	case opts.LeaseTTL < 0:
		return nil, fmt.Errorf("%w: negative LeaseTTL", saga.ErrInvalidArgument)
	}
	if opts.Schema == "" {
		opts.Schema = "sagaflow"
	}
	if !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("%w: schema name %q (want lower-case letters, digits and _)", saga.ErrInvalidArgument, opts.Schema)
	}
	if opts.Node == "" {
		opts.Node = uuid.NewString()
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := migrate(ctx, db, opts.Schema); err != nil {
		return nil, fmt.Errorf("pgstore: schema %s: %w", opts.Schema, err)
	}
	s := &Store{
		db:      db,
		opts:    opts,
		node:    opts.Node,
		ttl:     opts.LeaseTTL,
		clock:   opts.Clock,
		log:     opts.Logger,
		q:       newQueries(quote(opts.Schema)),
		owned:   make(map[string]int64),
		stop:    make(chan struct{}),
		appends: make(chan *appendReq),
		quit:    make(chan struct{}),
	}
	expiry := s.clock.Now().Add(s.ttl)
	if _, err := db.ExecContext(ctx, s.q.join, s.node, expiry); err != nil {
		return nil, fmt.Errorf("pgstore: register node: %w", err)
	}
	if _, err := db.ExecContext(ctx, s.q.releaseAll, s.node); err != nil {
		return nil, fmt.Errorf("pgstore: hand back a previous run's instances: %w", err)
	}
	s.expiry = expiry
	s.renewed.Add(1)
	go s.renewLoop()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.writing.Add(writers)
	for range writers {
		go s.writeLoop()
	}
	return s, nil
}

// Node returns the name of this process in the lease table.
func (s *Store) Node() string { return s.node }

// Durable reports true: logs live in the database.
func (s *Store) Durable() bool { return true }

// Ping checks the database and that this node's lease has not expired.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	closed, expiry := s.closed, s.expiry
	s.mu.Unlock()
	if closed {
		return saga.ErrClosed
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if now := s.clock.Now(); !now.Before(expiry) {
		return fmt.Errorf("pgstore: lease of node %s expired at %v (now %v)", s.node, expiry, now)
	}
	return nil
}

// Create stores a new instance owned by this node.
func (s *Store) Create(ctx context.Context, events []saga.Event) error {
	return s.create(ctx, events, true)
}

// Offer stores a new instance that no node owns: the first node to Claim
// it runs it.
func (s *Store) Offer(ctx context.Context, events []saga.Event) error {
	return s.create(ctx, events, false)
}

// create stores a new instance, owned by this node or by none.
func (s *Store) create(ctx context.Context, events []saga.Event, own bool) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", saga.ErrInvalidArgument)
	}
	id := events[0].SagaID
	if err := saga.CheckAppend(id, 0, events); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	last := events[len(events)-1]
	rows, err := encodeRows(id, events)
	if err != nil {
		return err
	}
	var owner any
	if own {
		owner = s.node
	}
	res, err := s.db.ExecContext(ctx, s.q.create,
		id, events[0].Definition, last.Seq, last.Ends(), owner, events[0].Run, "["+string(rows)+"]")
	if err != nil {
		return fmt.Errorf("pgstore: create %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("pgstore: create %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %q", saga.ErrDuplicate, id)
	}
	if own && !last.Ends() {
		s.mu.Lock()
		s.owned[id] = 1
		s.mu.Unlock()
	}
	return nil
}

// Append adds events to the log of sagaID if its last sequence number is
// expected and this node still owns it under the epoch it last claimed or
// created it with. The check and the write are one statement. When ctx
// ends before the database answers, Append returns ctx's error at once,
// and the events may yet be written, as when a connection fails after a
// commit: the next append of the instance finds out.
func (s *Store) Append(ctx context.Context, sagaID string, expected uint64, events []saga.Event) error {
	if err := saga.CheckAppend(sagaID, expected, events); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	epoch, owned := s.owned[sagaID]
	s.mu.Unlock()
	if closed {
		return saga.ErrClosed
	}
	if !owned {
		return s.refused(ctx, sagaID, expected, 0, events[0].Run)
	}
	r, err := newAppendReq(ctx, sagaID, expected, epoch, events)
	if err != nil {
		return err
	}
	switch err := s.submit(r); {
	case errors.Is(err, errNotApplied):
		return s.refused(ctx, sagaID, expected, epoch, events[0].Run)
	case err != nil:
		return err
	}
	if events[len(events)-1].Ends() {
		s.disown(sagaID)
	}
	return nil
}

// refused finds out why an append was not applied.
func (s *Store) refused(ctx context.Context, sagaID string, expected uint64, epoch int64, run string) error {
	var (
		last     uint64
		finished bool
		owner    sql.NullString
		current  int64
		logRun   string
	)
	err := s.db.QueryRowContext(ctx, s.q.instance, sagaID).Scan(&last, &finished, &owner, &current, &logRun)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %q", saga.ErrNotFound, sagaID)
	case err != nil:
		return fmt.Errorf("pgstore: append to %q: %w", sagaID, err)
	case run != logRun:
		return fmt.Errorf("%w: events of run %q appended to %q of run %q", saga.ErrInvalidEvent, run, sagaID, logRun)
	case finished:
		s.disown(sagaID)
		return fmt.Errorf("%w: %q", saga.ErrFinished, sagaID)
	case owner.String != s.node || current != epoch:
		s.disown(sagaID)
		return fmt.Errorf("%w: %q is owned by node %q (epoch %d), not by %q (epoch %d)",
			saga.ErrFenced, sagaID, owner.String, current, s.node, epoch)
	case last != expected:
		return fmt.Errorf("%w: %q is at %d, not %d", saga.ErrConflict, sagaID, last, expected)
	}
	return fmt.Errorf("pgstore: append to %q was not applied", sagaID)
}

func (s *Store) disown(sagaID string) {
	s.mu.Lock()
	delete(s.owned, sagaID)
	s.mu.Unlock()
}

// Load returns the whole log of sagaID, whoever owns it.
func (s *Store) Load(ctx context.Context, sagaID string) ([]saga.Event, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q.load, sagaID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: load %q: %w", sagaID, err)
	}
	defer rows.Close()
	var events []saga.Event
	for rows.Next() {
		var meta, state, payload []byte
		if err := rows.Scan(&meta, &state, &payload); err != nil {
			return nil, fmt.Errorf("pgstore: load %q: %w", sagaID, err)
		}
		var e saga.Event
		if err := json.Unmarshal(meta, &e); err != nil {
			return nil, fmt.Errorf("pgstore: load %q: event %d: %w", sagaID, len(events)+1, err)
		}
		e.State, e.Payload = state, payload
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: load %q: %w", sagaID, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: %q", saga.ErrNotFound, sagaID)
	}
	return events, nil
}

// Unfinished returns the unfinished instances of definition, whoever owns
// them, oldest first.
func (s *Store) Unfinished(ctx context.Context, definition string) ([]string, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q.unfinished, definition)
	if err != nil {
		return nil, fmt.Errorf("pgstore: unfinished: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("pgstore: unfinished: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: unfinished: %w", err)
	}
	return ids, nil
}

// open returns ErrClosed after Close.
func (s *Store) open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return saga.ErrClosed
	}
	return nil
}

// nullBytes keeps nil apart from empty: nil is stored as NULL.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// queries holds the statements for one schema.
type queries struct {
	join       string
	renew      string
	leave      string
	census     string
	unrun      string
	releaseAll string
	release    string
	claim      string
	instance   string
	load       string
	unfinished string
	finished   string
	forward    string
	inbox      string
	delivered  string
	create     string
	batch      string
	prune      string
}

func newQueries(schema string) queries {
	return queries{
		join: `INSERT INTO ` + schema + `.nodes (node, expires_at) VALUES ($1, $2)
			ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at`,
		renew: `UPDATE ` + schema + `.nodes SET expires_at = $2 WHERE node = $1`,
		leave: `WITH r AS (DELETE FROM ` + schema + `.runners WHERE node = $1)
			DELETE FROM ` + schema + `.nodes WHERE node = $1`,
		unrun: `DELETE FROM ` + schema + `.runners WHERE node = $1 AND definition = $2`,
		census: `WITH me AS (
				INSERT INTO ` + schema + `.runners (node, definition) VALUES ($1, $2)
				ON CONFLICT (definition, node) DO NOTHING
			)
			SELECT
				(SELECT count(*) FROM ` + schema + `.runners AS r JOIN ` + schema + `.nodes AS o USING (node)
					WHERE r.definition = $2 AND r.node <> $1 AND o.expires_at > $3),
				count(*),
				count(*) FILTER (WHERE o.node IS NULL)
			FROM ` + schema + `.instances AS i
				LEFT JOIN ` + schema + `.nodes AS o ON o.node = i.owner AND o.expires_at > $3
			WHERE i.definition = $2 AND NOT i.finished`,
		releaseAll: `UPDATE ` + schema + `.instances SET owner = NULL
			WHERE owner = $1 AND NOT finished`,
		release: `UPDATE ` + schema + `.instances SET owner = NULL
			WHERE saga_id = $2 AND owner = $1`,
		claim: `UPDATE ` + schema + `.instances AS i SET owner = $1, epoch = i.epoch + 1
			FROM (
				SELECT c.saga_id FROM ` + schema + `.instances AS c
				WHERE c.definition = $2 AND NOT c.finished
					AND c.owner IS DISTINCT FROM $1
					AND (c.owner IS NULL OR NOT EXISTS (
						SELECT 1 FROM ` + schema + `.nodes AS o
						WHERE o.node = c.owner AND o.expires_at > $3))
				ORDER BY c.n
				LIMIT $4
				FOR UPDATE SKIP LOCKED
			) AS c
			WHERE i.saga_id = c.saga_id
			RETURNING i.saga_id, i.epoch, i.n`,
		instance: `SELECT last_seq, finished, owner, epoch, run FROM ` + schema + `.instances WHERE saga_id = $1`,
		load:     `SELECT meta, state, payload FROM ` + schema + `.events WHERE saga_id = $1 ORDER BY seq`,
		unfinished: `SELECT saga_id FROM ` + schema + `.instances
			WHERE definition = $1 AND NOT finished ORDER BY n`,
		finished: `SELECT finished FROM ` + schema + `.instances WHERE saga_id = $1`,
		forward: `INSERT INTO ` + schema + `.signals (saga_id, name, payload, dedup_key)
			SELECT saga_id, $2, $3, $4 FROM ` + schema + `.instances WHERE saga_id = $1 AND NOT finished`,
		inbox: `SELECT s.id, s.saga_id, s.name, s.payload, s.dedup_key
			FROM ` + schema + `.signals AS s JOIN ` + schema + `.instances AS i USING (saga_id)
			WHERE i.owner = $1 AND i.definition = $2
			ORDER BY s.id LIMIT $3`,
		delivered: `DELETE FROM ` + schema + `.signals WHERE id IN `,
		create: `WITH i AS (
				INSERT INTO ` + schema + `.instances (saga_id, definition, last_seq, finished, owner, run, epoch)
				VALUES ($1, $2, $3, $4, $5, $6, 1)
				ON CONFLICT (saga_id) DO NOTHING
				RETURNING saga_id
			)
			` + insertEvents(schema, "$7", "SELECT saga_id FROM i"),
		batch: batchQuery(schema),
		prune: pruneQuery(schema),
	}
}
