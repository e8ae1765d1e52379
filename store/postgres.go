package store

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/deepmeter/deepmeter/pricing"
)

// postgresStore is the Store on Postgres, through a pgx connection pool.
type postgresStore struct {
	pool *pgxpool.Pool
}

// openPostgres returns a store on a pool that connects lazily.
func openPostgres(ctx context.Context, dbURL string) (*postgresStore, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		// pgconn.ParseConfigError redacts the password itself.
		return nil, fmt.Errorf("parse Postgres URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open Postgres pool for %s: %w", RedactURL(dbURL), err)
	}
	return &postgresStore{pool: pool}, nil
}

// migratePostgres runs the migrations through golang-migrate's pgx/v5
// driver, which holds a Postgres advisory lock while it migrates. The
// driver reads the schema from current_schema(), so a search_path in the
// URL also decides where its schema_migrations table goes.
func migratePostgres(ctx context.Context, dbURL string) error {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse Postgres URL: %w", err)
	}

	// The driver takes a database/sql handle. pgxpool.ParseConfig has
	// already removed the pool_* parameters, which the server would reject.
	db := stdlib.OpenDB(*cfg.ConnConfig)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("connect to Postgres at %s: %w", RedactURL(dbURL), err)
	}
	// NOTE: WithInstance waits for the advisory lock without a deadline
	// while it creates schema_migrations, so ctx cannot end that wait.
	// It is long only while another process runs a long migration.
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		db.Close()
		return fmt.Errorf("prepare Postgres migrations: %w", err)
	}
	return runMigrations(ctx, "migrations/postgres", "pgx5", drv)
}

func (s *postgresStore) Insert(ctx context.Context, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	batch := prepareBatch(records)
	rows := make([][]any, len(batch))
	for i := range batch {
		rows[i] = columnValues(&batch[i], postgresTimeValue)
	}

	// Almost every batch holds only new ids, so COPY straight into
	// api_usage comes first. A batch with an id already stored, such as a
	// replay from the spool, fails it with a unique violation and goes
	// the slower way below.
	err := s.copyDirect(ctx, rows)
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation {
		return err
	}

	// COPY cannot skip existing keys, so the batch goes through a
	// temporary table and INSERT ... ON CONFLICT DO NOTHING, all in one
	// transaction. ORDER BY id keeps the row lock order of every batch the
	// same, so a batch that shares IDs with a concurrent one waits for it
	// instead of deadlocking.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("insert records: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE api_usage_batch (LIKE api_usage) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("insert records: create batch table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"api_usage_batch"}, usageColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("insert records: copy %d records: %w", len(rows), err)
	}
	cols := strings.Join(usageColumns, ", ")
	insert := `INSERT INTO api_usage (` + cols + `) SELECT ` + cols +
		` FROM api_usage_batch ORDER BY id ON CONFLICT (id) DO NOTHING`
	if _, err := tx.Exec(ctx, insert); err != nil {
		return fmt.Errorf("insert records: move batch into api_usage: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("insert records: commit: %w", err)
	}
	return nil
}

// uniqueViolation is the SQLSTATE of a duplicate key.
const uniqueViolation = "23505"

// copyDirect copies rows into api_usage in one transaction.
func (s *postgresStore) copyDirect(ctx context.Context, rows [][]any) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("insert records: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"api_usage"}, usageColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("insert records: copy %d records: %w", len(rows), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("insert records: commit: %w", err)
	}
	return nil
}

func (s *postgresStore) Stats(ctx context.Context, since time.Time) (Stats, error) {
	// The ::bigint casts of the token sums cannot overflow because the
	// Meter stores at most 2^40 tokens per count and record, which allows
	// 8 million records at that maximum.
	const query = `
SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), model, currency,
       count(*),
       count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE cost IS NULL),
       count(*) FILTER (WHERE usage_source = 'estimated'),
       sum(processing_time_ms)::bigint,
       sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(total_tokens)::bigint,
       sum(prompt_cache_hit_tokens)::bigint, sum(prompt_cache_miss_tokens)::bigint,
       sum(reasoning_tokens)::bigint,
       sum(cost)::text,
       (sum(cost) FILTER (WHERE usage_source = 'estimated'))::text
FROM api_usage
WHERE created_at >= $1
GROUP BY 1, 2, 3`

	rows, err := s.pool.Query(ctx, query, since)
	if err != nil {
		return Stats{}, fmt.Errorf("query stats: %w", err)
	}
	defer rows.Close()
	var groups []statsGroup
	for rows.Next() {
		var g statsGroup
		var cost, estimatedCost *string
		if err := rows.Scan(&g.day, &g.model, &g.currency,
			&g.calls, &g.successful, &g.unpriced, &g.estimated,
			&g.processingTimeMillis,
			&g.promptTokens, &g.completionTokens, &g.totalTokens,
			&g.promptCacheHitTokens, &g.promptCacheMissTokens, &g.reasoningTokens,
			&cost, &estimatedCost); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		if g.cost, err = parseNumericSum(cost); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		if g.estimatedCost, err = parseNumericSum(estimatedCost); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	return buildStats(groups), nil
}

func (s *postgresStore) Totals(ctx context.Context, from, to time.Time) (Totals, error) {
	const query = `
SELECT currency, count(*), sum(cost)::text,
       (sum(cost) FILTER (WHERE usage_source = 'estimated'))::text
FROM api_usage
WHERE created_at >= $1 AND created_at < $2
GROUP BY currency`

	rows, err := s.pool.Query(ctx, query, from, to)
	if err != nil {
		return Totals{}, fmt.Errorf("query totals: %w", err)
	}
	defer rows.Close()
	t := Totals{Cost: pricing.NewAmounts(), EstimatedCost: pricing.NewAmounts()}
	for rows.Next() {
		var currency string
		var calls int64
		var cost, estimatedCost *string
		if err := rows.Scan(&currency, &calls, &cost, &estimatedCost); err != nil {
			return Totals{}, fmt.Errorf("read totals: %w", err)
		}
		t.Calls += calls
		if err := addNumericSum(t.Cost, currency, cost); err != nil {
			return Totals{}, fmt.Errorf("read totals: %w", err)
		}
		if err := addNumericSum(t.EstimatedCost, currency, estimatedCost); err != nil {
			return Totals{}, fmt.Errorf("read totals: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return Totals{}, fmt.Errorf("read totals: %w", err)
	}
	return t, nil
}

func (s *postgresStore) List(ctx context.Context, q ListQuery) ([]ListedRecord, int64, error) {
	if err := checkListQuery(q); err != nil {
		return nil, 0, err
	}

	// One snapshot for the page and the count, so they agree.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("list records: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var total int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_usage WHERE created_at >= $1`, q.Since).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count records: %w", err)
	}
	page := []ListedRecord{}
	if q.Limit == 0 {
		return page, total, nil
	}

	rows, err := tx.Query(ctx, `SELECT `+listColumns+` FROM api_usage WHERE created_at >= $1
ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, q.Since, q.Limit, q.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	if page, err = readListed(rows, postgresTime); err != nil {
		return nil, 0, err
	}
	return page, total, nil
}

func (s *postgresStore) Record(ctx context.Context, id string) (Record, error) {
	var r Record
	var scan recordScan[time.Time]
	query := `SELECT ` + strings.Join(usageColumns, ", ") + ` FROM api_usage WHERE id = $1`
	err := s.pool.QueryRow(ctx, query, id).Scan(scan.targets(&r, true)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("record %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read record %q: %w", id, err)
	}
	scan.finish(&r, postgresTime)
	return r, nil
}

func (s *postgresStore) Balance(ctx context.Context) (Balance, error) {
	return s.readSetting(ctx, balanceSetting)
}

func (s *postgresStore) DailyLimit(ctx context.Context) (Balance, error) {
	return s.readSetting(ctx, dailyLimitSetting)
}

func (s *postgresStore) SetBalance(ctx context.Context, b Balance, tokenName string) error {
	return s.writeSetting(ctx, balanceSetting, b, tokenName)
}

func (s *postgresStore) SetDailyLimit(ctx context.Context, limit Balance, tokenName string) error {
	return s.writeSetting(ctx, dailyLimitSetting, limit, tokenName)
}

// readSetting reads the one row of set's table.
func (s *postgresStore) readSetting(ctx context.Context, set setting) (Balance, error) {
	var b Balance
	err := s.pool.QueryRow(ctx, `SELECT `+set.key+`, currency, updated_at FROM `+set.table+` WHERE id = 1`).
		Scan((*int64)(&b.Amount), &b.Currency, &b.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("read %s: %w", set.key, err)
	}
	b.UpdatedAt = b.UpdatedAt.UTC()
	return b, nil
}

// writeSetting replaces the row of set's table and adds the audit entry
// in one transaction.
func (s *postgresStore) writeSetting(ctx context.Context, set setting, b Balance, tokenName string) error {
	b = cleanBalance(b)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("set %s: begin: %w", set.key, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// The table lock serializes changes across replicas, so each audit
	// entry's old value is the value its change replaced, also when no
	// row exists yet to lock.
	if _, err := tx.Exec(ctx, `LOCK TABLE `+set.table+` IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("set %s: lock: %w", set.key, err)
	}
	var old Balance
	err = tx.QueryRow(ctx, `SELECT `+set.key+`, currency, updated_at FROM `+set.table+` WHERE id = 1`).
		Scan((*int64)(&old.Amount), &old.Currency, &old.UpdatedAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("set %s: read the old value: %w", set.key, err)
	}

	_, err = tx.Exec(ctx, `INSERT INTO `+set.table+` (id, `+set.key+`, currency, updated_at) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO UPDATE SET `+set.key+` = excluded.`+set.key+`, currency = excluded.currency, updated_at = excluded.updated_at`,
		int64(b.Amount), b.Currency, b.UpdatedAt)
	if err != nil {
		return fmt.Errorf("set %s: %w", set.key, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO api_audit (created_at, token_name, action, old_value, new_value) VALUES ($1, $2, $3, $4, $5)`,
		b.UpdatedAt, cleanString(tokenName), set.action, auditJSON(set.key, old), auditJSON(set.key, b))
	if err != nil {
		return fmt.Errorf("set %s: write the audit entry: %w", set.key, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("set %s: commit: %w", set.key, err)
	}
	return nil
}

func (s *postgresStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, int64, error) {
	if err := checkAuditQuery(q); err != nil {
		return nil, 0, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var total int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_audit`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count audit entries: %w", err)
	}
	entries := []AuditEntry{}
	if q.Limit == 0 {
		return entries, total, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, created_at, token_name, action, old_value, new_value FROM api_audit
ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2`, q.Limit, q.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.CreatedAt, &e.TokenName, &e.Action, &e.OldValue, &e.NewValue); err != nil {
			return nil, 0, fmt.Errorf("read audit entry: %w", err)
		}
		e.CreatedAt = postgresTime(e.CreatedAt)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read audit entries: %w", err)
	}
	return entries, total, nil
}

// Ping checks that the database answers and that the api_usage table can
// be read, which fails once the database was recreated empty.
func (s *postgresStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping Postgres: %w", err)
	}
	var one int
	err := s.pool.QueryRow(ctx, "SELECT 1 FROM api_usage LIMIT 1").Scan(&one)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("ping Postgres: read api_usage: %w", err)
	}
	return nil
}

func (s *postgresStore) Close() error {
	s.pool.Close()
	return nil
}

// postgresTimeValue returns t as pgx encodes a TIMESTAMPTZ.
func postgresTimeValue(t time.Time) any { return t }

// postgresTime converts a scanned TIMESTAMPTZ, which pgx returns in the
// local zone, to UTC.
func postgresTime(t time.Time) time.Time { return t.UTC() }

// parseNumericSum parses a Postgres SUM over BIGINT, which is NUMERIC and
// can exceed int64, from its text form. It returns nil for NULL.
func parseNumericSum(s *string) (*big.Int, error) {
	if s == nil {
		return nil, nil
	}
	v, ok := new(big.Int).SetString(*s, 10)
	if !ok {
		return nil, fmt.Errorf("invalid money sum %q", *s)
	}
	return v, nil
}

// addNumericSum adds the NUMERIC sum s, unless NULL, to currency in a.
func addNumericSum(a pricing.Amounts, currency string, s *string) error {
	v, err := parseNumericSum(s)
	if err != nil || v == nil {
		return err
	}
	a.Add(currency, v)
	return nil
}
