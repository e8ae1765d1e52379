package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/deepmeter/deepmeter/pricing"
)

// sqliteBusyTimeout is how long a connection waits for a lock that another
// connection or process holds before it fails with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// sqliteStore is the Store on an SQLite file in WAL mode. Writes go through
// a pool of one connection, so batches queue in Go instead of failing on
// the database lock. Reads use their own pool and, in WAL mode, run beside
// the writer.
type sqliteStore struct {
	writer *sql.DB
	reader *sql.DB

	// path and file identify the database file as opened. Open
	// connections keep using a file that was deleted or replaced, so Ping
	// compares the file at path with file.
	path string
	file os.FileInfo
}

// sqliteDSN returns the modernc.org/sqlite data source name for path.
// Every connection sets busy_timeout and WAL journal mode. Writer
// connections begin transactions with BEGIN IMMEDIATE, so a transaction
// never has to upgrade a read lock. Reader connections are read-only.
func sqliteDSN(path string, writer bool) string {
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
	}
	if writer {
		params = append(params, "_txlock=immediate")
	} else {
		params = append(params, "_pragma=query_only(1)")
	}
	return path + "?" + strings.Join(params, "&")
}

func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
	if err := checkSQLiteDir(path); err != nil {
		return nil, err
	}
	writer, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		return nil, fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)

	reader, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	readers := max(4, runtime.NumCPU())
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)

	// The first connection creates the file when it does not exist yet.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	file, err := os.Stat(path)
	if err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	return &sqliteStore{writer: writer, reader: reader, path: path, file: file}, nil
}

// migrateSQLite runs the migrations through golang-migrate's sqlite driver
// on a connection pool of its own.
func migrateSQLite(ctx context.Context, path string) error {
	if err := checkSQLiteDir(path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		return fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	drv, err := migratesqlite.WithInstance(db, &migratesqlite.Config{})
	if err != nil {
		db.Close()
		return fmt.Errorf("prepare SQLite migrations: %w", err)
	}
	return runMigrations(ctx, "migrations/sqlite", "sqlite", drv)
}

func (s *sqliteStore) Insert(ctx context.Context, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	batch := prepareBatch(records)

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert records: begin: %w", err)
	}
	defer tx.Rollback()

	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(usageColumns)), ", ")
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO api_usage (`+strings.Join(usageColumns, ", ")+
		`) VALUES (`+placeholders+`) ON CONFLICT (id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("insert records: prepare: %w", err)
	}
	defer stmt.Close()
	for i := range batch {
		if _, err := stmt.ExecContext(ctx, columnValues(&batch[i], sqliteTimeValue)...); err != nil {
			return fmt.Errorf("insert record %q: %w", batch[i].ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert records: commit: %w", err)
	}
	return nil
}

func (s *sqliteStore) Stats(ctx context.Context, since time.Time) (Stats, error) {
	// The day is floor(created_at / microseconds per day); SQLite's integer
	// division truncates toward zero, so times before 1970 need the ELSE.
	// Costs are summed in two halves (see splitDivisor). Token sums
	// stay within int64 because the Meter stores at most 2^40 tokens per
	// count and record, which allows 8 million records at that maximum.
	const query = `
SELECT CASE WHEN created_at >= 0 THEN created_at / 86400000000
            ELSE (created_at + 1) / 86400000000 - 1 END,
       model, currency,
       count(*),
       count(*) FILTER (WHERE success = 1),
       count(*) FILTER (WHERE cost IS NULL),
       count(*) FILTER (WHERE usage_source = 'estimated'),
       sum(processing_time_ms),
       sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
       sum(prompt_cache_hit_tokens), sum(prompt_cache_miss_tokens),
       sum(reasoning_tokens),
       sum(cost / 1000000), sum(cost % 1000000),
       sum(cost / 1000000) FILTER (WHERE usage_source = 'estimated'),
       sum(cost % 1000000) FILTER (WHERE usage_source = 'estimated')
FROM api_usage
WHERE created_at >= ?
GROUP BY 1, 2, 3`

	rows, err := s.reader.QueryContext(ctx, query, storedTime(since).UnixMicro())
	if err != nil {
		return Stats{}, fmt.Errorf("query stats: %w", err)
	}
	defer rows.Close()
	var groups []statsGroup
	for rows.Next() {
		var g statsGroup
		var day int64
		var costHigh, costLow, estimatedHigh, estimatedLow *int64
		if err := rows.Scan(&day, &g.model, &g.currency,
			&g.calls, &g.successful, &g.unpriced, &g.estimated,
			&g.processingTimeMillis,
			&g.promptTokens, &g.completionTokens, &g.totalTokens,
			&g.promptCacheHitTokens, &g.promptCacheMissTokens, &g.reasoningTokens,
			&costHigh, &costLow, &estimatedHigh, &estimatedLow); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		g.day = time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
		g.cost = splitSum(costHigh, costLow)
		g.estimatedCost = splitSum(estimatedHigh, estimatedLow)
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	return buildStats(groups), nil
}

func (s *sqliteStore) Totals(ctx context.Context, from, to time.Time) (Totals, error) {
	const query = `
SELECT currency, count(*),
       sum(cost / 1000000), sum(cost % 1000000),
       sum(cost / 1000000) FILTER (WHERE usage_source = 'estimated'),
       sum(cost % 1000000) FILTER (WHERE usage_source = 'estimated')
FROM api_usage
WHERE created_at >= ? AND created_at < ?
GROUP BY currency`

	rows, err := s.reader.QueryContext(ctx, query, storedTime(from).UnixMicro(), storedTime(to).UnixMicro())
	if err != nil {
		return Totals{}, fmt.Errorf("query totals: %w", err)
	}
	defer rows.Close()
	t := Totals{Cost: pricing.NewAmounts(), EstimatedCost: pricing.NewAmounts()}
	for rows.Next() {
		var currency string
		var calls int64
		var costHigh, costLow, estimatedHigh, estimatedLow *int64
		if err := rows.Scan(&currency, &calls, &costHigh, &costLow, &estimatedHigh, &estimatedLow); err != nil {
			return Totals{}, fmt.Errorf("read totals: %w", err)
		}
		t.Calls += calls
		if v := splitSum(costHigh, costLow); v != nil {
			t.Cost.Add(currency, v)
		}
		if v := splitSum(estimatedHigh, estimatedLow); v != nil {
			t.EstimatedCost.Add(currency, v)
		}
	}
	if err := rows.Err(); err != nil {
		return Totals{}, fmt.Errorf("read totals: %w", err)
	}
	return t, nil
}

func (s *sqliteStore) List(ctx context.Context, q ListQuery) ([]ListedRecord, int64, error) {
	if err := checkListQuery(q); err != nil {
		return nil, 0, err
	}
	since := storedTime(q.Since).UnixMicro()

	// One read transaction is one WAL snapshot, so the page and the count
	// agree.
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("list records: begin: %w", err)
	}
	defer tx.Rollback()

	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_usage WHERE created_at >= ?`, since).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count records: %w", err)
	}
	page := []ListedRecord{}
	if q.Limit == 0 {
		return page, total, nil
	}

	rows, err := tx.QueryContext(ctx, `SELECT `+listColumns+` FROM api_usage WHERE created_at >= ?
ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, since, q.Limit, q.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	if page, err = readListed(rows, sqliteTime); err != nil {
		return nil, 0, err
	}
	return page, total, nil
}

func (s *sqliteStore) Record(ctx context.Context, id string) (Record, error) {
	var r Record
	var scan recordScan[int64]
	query := `SELECT ` + strings.Join(usageColumns, ", ") + ` FROM api_usage WHERE id = ?`
	err := s.reader.QueryRowContext(ctx, query, id).Scan(scan.targets(&r, true)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("record %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read record %q: %w", id, err)
	}
	scan.finish(&r, sqliteTime)
	return r, nil
}

func (s *sqliteStore) Balance(ctx context.Context) (Balance, error) {
	return s.readSetting(ctx, balanceSetting)
}

func (s *sqliteStore) DailyLimit(ctx context.Context) (Balance, error) {
	return s.readSetting(ctx, dailyLimitSetting)
}

func (s *sqliteStore) SetBalance(ctx context.Context, b Balance, tokenName string) error {
	return s.writeSetting(ctx, balanceSetting, b, tokenName)
}

func (s *sqliteStore) SetDailyLimit(ctx context.Context, limit Balance, tokenName string) error {
	return s.writeSetting(ctx, dailyLimitSetting, limit, tokenName)
}

// readSetting reads the one row of set's table.
func (s *sqliteStore) readSetting(ctx context.Context, set setting) (Balance, error) {
	var b Balance
	var updatedAt int64
	err := s.reader.QueryRowContext(ctx, `SELECT `+set.key+`, currency, updated_at FROM `+set.table+` WHERE id = 1`).
		Scan((*int64)(&b.Amount), &b.Currency, &updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("read %s: %w", set.key, err)
	}
	b.UpdatedAt = sqliteTime(updatedAt)
	return b, nil
}

// writeSetting replaces the row of set's table and adds the audit entry
// in one transaction.
func (s *sqliteStore) writeSetting(ctx context.Context, set setting, b Balance, tokenName string) error {
	b = cleanBalance(b)

	// The writer begins with BEGIN IMMEDIATE, so no other change can come
	// between reading the old value and writing the new one.
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set %s: begin: %w", set.key, err)
	}
	defer tx.Rollback()

	var old Balance
	var oldUpdatedAt int64
	err = tx.QueryRowContext(ctx, `SELECT `+set.key+`, currency, updated_at FROM `+set.table+` WHERE id = 1`).
		Scan((*int64)(&old.Amount), &old.Currency, &oldUpdatedAt)
	switch {
	case err == nil:
		old.UpdatedAt = sqliteTime(oldUpdatedAt)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("set %s: read the old value: %w", set.key, err)
	}

	_, err = tx.ExecContext(ctx, `INSERT INTO `+set.table+` (id, `+set.key+`, currency, updated_at) VALUES (1, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET `+set.key+` = excluded.`+set.key+`, currency = excluded.currency, updated_at = excluded.updated_at`,
		int64(b.Amount), b.Currency, b.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("set %s: %w", set.key, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_audit (created_at, token_name, action, old_value, new_value) VALUES (?, ?, ?, ?, ?)`,
		b.UpdatedAt.UnixMicro(), cleanString(tokenName), set.action, auditJSON(set.key, old), auditJSON(set.key, b))
	if err != nil {
		return fmt.Errorf("set %s: write the audit entry: %w", set.key, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set %s: commit: %w", set.key, err)
	}
	return nil
}

func (s *sqliteStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, int64, error) {
	if err := checkAuditQuery(q); err != nil {
		return nil, 0, err
	}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: begin: %w", err)
	}
	defer tx.Rollback()

	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_audit`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count audit entries: %w", err)
	}
	entries := []AuditEntry{}
	if q.Limit == 0 {
		return entries, total, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, created_at, token_name, action, old_value, new_value FROM api_audit
ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, q.Limit, q.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e AuditEntry
		var createdAt int64
		if err := rows.Scan(&e.ID, &createdAt, &e.TokenName, &e.Action, &e.OldValue, &e.NewValue); err != nil {
			return nil, 0, fmt.Errorf("read audit entry: %w", err)
		}
		e.CreatedAt = sqliteTime(createdAt)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read audit entries: %w", err)
	}
	return entries, total, nil
}

func (s *sqliteStore) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("ping SQLite: %w", err)
	}
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("ping SQLite: %w", err)
	}

	// A deleted or replaced file still answers on the open connections,
	// while new ones would open a file without the schema.
	file, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("ping SQLite: database file: %w", err)
	}
	if !os.SameFile(file, s.file) {
		return fmt.Errorf("ping SQLite: database file %q was replaced after it was opened", s.path)
	}
	if err := pingTable(ctx, s.reader); err != nil {
		return fmt.Errorf("ping SQLite: %w", err)
	}
	return nil
}

// pingTable checks that the api_usage table can be read, which fails once
// the schema is gone, as after the database was recreated empty.
func pingTable(ctx context.Context, db *sql.DB) error {
	var one int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM api_usage LIMIT 1").Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read api_usage: %w", err)
	}
	return nil
}

func (s *sqliteStore) Close() error {
	return errors.Join(s.writer.Close(), s.reader.Close())
}

// sqliteTime converts a stored time, Unix microseconds, to a UTC time.
func sqliteTime(micros int64) time.Time { return time.UnixMicro(micros).UTC() }

// sqliteTimeValue returns t as stored: Unix microseconds.
func sqliteTimeValue(t time.Time) any { return t.UnixMicro() }
