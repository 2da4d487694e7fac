package pgstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	sql     string
}

// migrations returns the embedded migrations in order. Their files are
// named NNN_what.sql; {{schema}} stands for the quoted schema name.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("pgstore: migration %q is not named NNN_what.sql", name)
		}
		text, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, sql: string(text)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	return ms, nil
}

// Version is the schema version this package creates and expects.
func Version() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate creates the schema or brings it up to date, in one transaction
// under an advisory lock keyed by the schema name, so that processes
// starting at once apply each migration exactly once. A schema newer than
// this package knows is refused.
func migrate(ctx context.Context, db *sql.DB, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // does nothing after Commit

	h := fnv.New64a()
	h.Write([]byte("sagaflow/pgstore/" + schema))
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return err
	}
	q := quote(schema)
	if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.migrations (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM `+q+`.migrations`).Scan(&current); err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("%w: schema %s is at version %d, this package knows up to %d",
			ErrSchemaTooNew, schema, current, latest)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, strings.ReplaceAll(m.sql, "{{schema}}", q)); err != nil {
			return fmt.Errorf("pgstore: migration %d: %w", m.version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+q+`.migrations (version) VALUES ($1)`, m.version); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// quote returns name as a quoted SQL identifier. Open accepts only names
// that need no escaping, so quoting is enough.
func quote(name string) string { return `"` + name + `"` }
