package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deepmeter/deepmeter/internal/testdb"
)

// privatePostgres is a PostgreSQL server of the test's own, in a
// temporary directory on a free loopback port, that the test may stop
// and start. The shared test server is never touched.
type privatePostgres struct {
	bin     string // directory of initdb, pg_ctl and postgres
	dataDir string
	port    int
	cred    *syscall.Credential // the postgres OS user when running as root
	url     string
}

// startPrivatePostgres creates and starts a private server. It skips the
// test when the PostgreSQL binaries are missing, unless
// DEEPMETER_REQUIRE_POSTGRES=1.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if os.Getenv(testdb.RequirePostgresEnv) == "1" {
			t.Fatalf("no /usr/lib/postgresql/*/bin/pg_ctl but %s=1: the Postgres fault tests must run", testdb.RequirePostgresEnv)
		}
		t.Skipf("no /usr/lib/postgresql/*/bin/pg_ctl: install PostgreSQL to run the Postgres fault tests")
	}
	pg := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1])}

	// The directory is world-traversable, because the server runs as the
	// postgres user when the test runs as root, which initdb rejects.
	root, err := os.MkdirTemp("", "deepmeter-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg.dataDir = filepath.Join(root, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres OS user to run the private server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.port = freePort(t)
	pg.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)

	pg.run(t, "initdb", "-D", pg.dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=40", pg.port, root)
	if err := os.WriteFile(filepath.Join(root, "pg_opts"), []byte(opts), 0o644); err != nil {
		t.Fatal(err)
	}
	pg.start(t)
	t.Cleanup(func() { pg.stop(t, "immediate") })
	return pg
}

// start starts the server and waits until it accepts connections.
func (pg *privatePostgres) start(t *testing.T) {
	t.Helper()
	opts, err := os.ReadFile(filepath.Join(filepath.Dir(pg.dataDir), "pg_opts"))
	if err != nil {
		t.Fatal(err)
	}
	pg.run(t, "pg_ctl", "-D", pg.dataDir, "-o", string(opts), "-l", filepath.Join(filepath.Dir(pg.dataDir), "log"), "-w", "-t", "60", "start")
}

// stop stops the server with the given pg_ctl mode: fast or immediate.
func (pg *privatePostgres) stop(t *testing.T, mode string) {
	t.Helper()
	cmd := pg.command("pg_ctl", "-D", pg.dataDir, "-m", mode, "-w", "-t", "60", "stop")
	if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "Is server running?") {
		t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (pg *privatePostgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Env = append(cleanEnv(), "LC_ALL=C")
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

func (pg *privatePostgres) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := pg.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// countRecords returns the rows of api_usage and the distinct ids among
// them.
func countRecords(t *testing.T, url string) (rows, ids int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to the private server: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM api_usage").Scan(&rows, &ids); err != nil {
		t.Fatalf("count records: %v", err)
	}
	return rows, ids
}

// storedIDs returns the set of ids in api_usage.
func storedIDs(t *testing.T, url string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to the private server: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id FROM api_usage")
	if err != nil {
		t.Fatalf("list ids: %v", err)
	}
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// phaseStats logs and returns the p50 and p99 latency of calls.
func phaseStats(t *testing.T, name string, calls []call) (p50, p99 time.Duration) {
	p50, p99 = percentile(calls, 50), percentile(calls, 99)
	t.Logf("%-22s %5d calls  p50 %8v  p99 %8v", name, len(calls), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	return p50, p99
}

// checkAllStored fails for every successful call without exactly one
// record, and for calls that failed.
func checkAllStored(t *testing.T, url string, calls []call) {
	t.Helper()
	rows, distinct := countRecords(t, url)
	if rows != distinct {
		t.Errorf("api_usage has %d rows for %d ids, want one row per id", rows, distinct)
	}
	ids := storedIDs(t, url)
	missing := 0
	for _, c := range calls {
		if c.err != nil || c.status != 200 || c.id == "" {
			t.Errorf("call failed: status %d, error %v", c.status, c.err)
			continue
		}
		if !ids[c.id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d calls have no record", missing, len(calls))
	}
	if rows != int64(len(calls)) {
		t.Errorf("api_usage has %d rows, want %d, one per call", rows, len(calls))
	}
}

// TestPostgresOutage stops the database in the middle of a load of
// 3,000 calls and starts it again while the calls go on. Every call must
// be stored exactly once, and clients must not feel the outage, because
// the request path only hands records to a queue and the writer spools
// what the database does not take.
func TestPostgresOutage(t *testing.T) {
	pg := startPrivatePostgres(t)
	upstream := startStandin(t)
	// A queue of 200 is far smaller than the 1,000 calls of the outage,
	// so records must overflow to the spool and none may be dropped.
	p := startProxy(t, "--upstream", upstream, "--database-url", pg.url,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"), "--queue-size", "200")

	const perPhase = 1000
	before := runLoad(p.url, 4, perPhase, nil, nil)
	pg.stop(t, "fast")
	down := runLoad(p.url, 4, perPhase, nil, nil)
	pg.start(t)
	after := runLoad(p.url, 4, perPhase, nil, nil)

	// The writer replays the spool within a second or two of the restart;
	// SIGTERM then flushes the queue.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rows, _ := countRecords(t, pg.url); rows >= 3*perPhase {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}

	all := append(append(append([]call{}, before...), down...), after...)
	checkAllStored(t, pg.url, all)

	upCalls := append(append([]call{}, before...), after...)
	_, upP99 := phaseStats(t, "database up", upCalls)
	_, downP99 := phaseStats(t, "database down", down)
	if limit := 3*upP99 + 20*time.Millisecond; downP99 > limit {
		t.Errorf("p99 with the database down = %v, want at most 3 x p99 with it up + 20ms = %v", downP99, limit)
	}
	if !strings.Contains(p.logs(), "spool replayed") {
		t.Errorf("no log of the spool replay after the outage")
	}
}

// TestPostgresLocked holds an ACCESS EXCLUSIVE lock on api_usage while
// 1,000 calls run, so every insert waits. The calls must not slow down,
// and every one is stored once the lock is released.
func TestPostgresLocked(t *testing.T) {
	pg := startPrivatePostgres(t)
	upstream := startStandin(t)
	p := startProxy(t, "--upstream", upstream, "--database-url", pg.url,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"))

	const perPhase = 1000
	before := runLoad(p.url, 4, perPhase, nil, nil)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE api_usage IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	locked := runLoad(p.url, 4, perPhase, nil, nil)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rows, _ := countRecords(t, pg.url); rows >= 2*perPhase {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	checkAllStored(t, pg.url, append(append([]call{}, before...), locked...))

	_, upP99 := phaseStats(t, "table free", before)
	_, lockedP99 := phaseStats(t, "table locked", locked)
	if limit := 3*upP99 + 20*time.Millisecond; lockedP99 > limit {
		t.Errorf("p99 with the table locked = %v, want at most 3 x p99 with it free + 20ms = %v", lockedP99, limit)
	}
}

// TestShutdownWithDatabaseDown stops the proxy with SIGTERM while the
// database is down: the queue goes to the spool, the process still exits
// 0, and a restart after the database is back stores every call once.
func TestShutdownWithDatabaseDown(t *testing.T) {
	pg := startPrivatePostgres(t)
	upstream := startStandin(t)
	args := []string{"--upstream", upstream, "--database-url", pg.url,
		"--spool-dir", filepath.Join(t.TempDir(), "spool")}
	p := startProxy(t, args...)

	before := runLoad(p.url, 4, 200, nil, nil)
	pg.stop(t, "fast")
	down := runLoad(p.url, 4, 200, nil, nil)
	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Fatalf("exit code with the database down = %d, want 0", code)
	}

	pg.start(t)
	again := startProxy(t, args...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rows, _ := countRecords(t, pg.url); rows >= 400 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := again.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code after the restart = %d, want 0", code)
	}
	checkAllStored(t, pg.url, append(before, down...))
}

// readyStatus returns the status code and the "database" field of the
// proxy's /readyz.
func readyStatus(t *testing.T, p *proxyProcess) (int, string) {
	t.Helper()
	resp, err := newClient().Get(p.adminURL + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Database string `json:"database"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		t.Fatalf("decode /readyz: %v", err)
	}
	return resp.StatusCode, body.Database
}

// TestStartWithDatabaseDown starts the proxy while Postgres is stopped,
// as after a crash or a deploy during an outage. The proxy must start
// and stay ready, spool the calls, migrate once the database is back,
// and store every call exactly once.
func TestStartWithDatabaseDown(t *testing.T) {
	pg := startPrivatePostgres(t)
	pg.stop(t, "fast")
	upstream := startStandin(t)
	// A queue of 50 makes most of the 300 calls overflow to the spool.
	p := startProxy(t, "--upstream", upstream, "--database-url", pg.url,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"), "--queue-size", "50")
	if !strings.Contains(p.logs(), "database unreachable at start") {
		t.Errorf("no warning that the database is unreachable at start")
	}

	down := runLoad(p.url, 4, 300, nil, nil)
	status, database := readyStatus(t, p)
	if status != 200 {
		t.Errorf("/readyz with the database down = %d, want 200", status)
	}
	if !strings.HasPrefix(database, "unreachable") {
		t.Errorf("/readyz database = %q with the database down, want unreachable: ...", database)
	}

	pg.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.logs(), "database reachable again") {
		if time.Now().After(deadline) {
			t.Fatalf("no migration within 60s of the database start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if rows, _ := countRecords(t, pg.url); rows >= int64(len(down)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, database = readyStatus(t, p)
	if status != 200 || database != "ok" {
		t.Errorf("/readyz after the recovery = %d with database %q, want 200 with ok", status, database)
	}

	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	checkAllStored(t, pg.url, down)
}

// TestStartFailsOnReachableDatabase checks that only an unreachable
// database lets the proxy start: a migration that fails on a reachable
// server, here a dirty schema, and an SQLite file that cannot be opened
// must still stop the start with their error.
func TestStartFailsOnReachableDatabase(t *testing.T) {
	pg := startPrivatePostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, true)")
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("mark the schema dirty: %v", err)
	}
	upstream := startStandin(t)

	cases := []struct {
		name        string
		databaseURL string
		wantLog     string
	}{
		{name: "dirty Postgres schema", databaseURL: pg.url, wantLog: "dirty"},
		{name: "SQLite directory missing", databaseURL: "sqlite:" + filepath.Join(t.TempDir(), "missing", "x.db"), wantLog: "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(buildBinary(t), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
				"--upstream", upstream, "--database-url", c.databaseURL, "--spool-dir", filepath.Join(t.TempDir(), "spool"))
			cmd.Env = cleanEnv()
			out, err := runBounded(cmd, 60*time.Second)
			if err == nil {
				t.Fatalf("serve exited 0, want a failed start:\n%s", out)
			}
			if !strings.Contains(string(out), c.wantLog) {
				t.Errorf("serve output does not mention %q:\n%s", c.wantLog, out)
			}
			if strings.Contains(string(out), "deepmeter started") {
				t.Errorf("serve started, want it to stop at the migration:\n%s", out)
			}
		})
	}
}

// runBounded runs cmd and kills it after timeout, returning its combined
// output.
func runBounded(cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.Bytes(), err
}

// TestSpoolFullRecovers fills a small spool during an outage, so records
// are dropped and /readyz turns 503. After the database is back and the
// replay has drained the spool, /readyz must return 200 again, although
// no append to the spool succeeded since it was full.
func TestSpoolFullRecovers(t *testing.T) {
	pg := startPrivatePostgres(t)
	upstream := startStandin(t)
	p := startProxy(t, "--upstream", upstream, "--database-url", pg.url,
		"--spool-dir", filepath.Join(t.TempDir(), "spool"), "--queue-size", "10", "--spool-max-bytes", "1048576")

	// 1,500 calls take more than the 1 MiB spool, the minimum size.
	pg.stop(t, "fast")
	runLoad(p.url, 4, 1500, nil, nil)
	if status, _ := readyStatus(t, p); status != 503 {
		t.Errorf("/readyz with a full spool = %d, want 503", status)
	}

	pg.start(t)
	deadline := time.Now().Add(60 * time.Second)
	status, database := readyStatus(t, p)
	for status != 200 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		status, database = readyStatus(t, p)
	}
	if status != 200 || database != "ok" {
		t.Errorf("/readyz after the spool drained = %d with database %q, want 200 with ok", status, database)
	}
	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
}
