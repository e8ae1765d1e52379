package faulttest

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// runLoad sends calls from workers goroutines until n calls were made or
// stop is closed, and returns every call.
func runLoad(url string, workers, n int, stop <-chan struct{}, onCall func(done int64)) []call {
	client := newClient()
	var next atomic.Int64
	var done atomic.Int64
	var mu sync.Mutex
	var calls []call
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				c := doCall(context.Background(), client, url, chatBody(int(i), i%4 == 0), "")
				// A pause keeps the load near 150 calls/s per worker, so the
				// test stays light on a shared machine.
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
				if onCall != nil {
					onCall(done.Add(1))
				}
			}
		}()
	}
	wg.Wait()
	return calls
}

// TestKillUnderLoad kills the proxy with SIGKILL in the middle of a load,
// restarts it on the same database and spool, and counts the records of
// calls that got a whole response. A crash may lose only the calls that
// finished in the last moment before it: the records still in memory,
// at most about --spool-sync worth plus the batch insert in progress.
func TestKillUnderLoad(t *testing.T) {
	const (
		syncWindow = 200 * time.Millisecond
		// insertSlack covers the batch insert in progress at the kill on
		// a loaded machine.
		insertSlack = time.Second
	)
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "deepmeter.db")
	upstream := startStandin(t)
	args := []string{"--upstream", upstream, "--database-url", dbURL, "--spool-sync", syncWindow.String()}
	p := startProxy(t, args...)

	// The kill comes after 2 s of load, so most calls are older than the
	// window and must all be stored.
	stop := make(chan struct{})
	var killAt time.Time
	var killOnce sync.Once
	loadStart := time.Now()
	calls := runLoad(p.url, 6, 20000, stop, func(int64) {
		if time.Since(loadStart) >= 2*time.Second {
			killOnce.Do(func() {
				killAt = time.Now()
				p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.exited
				close(stop)
			})
		}
	})
	if killAt.IsZero() {
		t.Fatalf("the load ended before the kill: %d calls", len(calls))
	}

	// The restart replays the spool; SIGTERM then flushes the queue.
	restartAt := time.Now()
	again := startProxy(t, args...)
	if code := again.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Fatalf("restarted deepmeter exited %d, want 0", code)
	}
	t.Logf("load %v, restart and stop %v", killAt.Sub(loadStart).Round(time.Millisecond), time.Since(restartAt).Round(time.Millisecond))

	var complete []call
	for _, c := range calls {
		if c.err == nil && c.status == 200 && c.id != "" && c.end.Before(killAt) {
			complete = append(complete, c)
		}
	}
	st := openSQLite(t, dbURL)
	missing := map[string]bool{}
	for _, id := range missingIDs(t, st, complete) {
		missing[id] = true
	}
	lastWindow := 0
	for _, c := range complete {
		inWindow := killAt.Sub(c.end) <= syncWindow+insertSlack
		if inWindow {
			lastWindow++
		}
		if missing[c.id] && !inWindow {
			t.Errorf("call %s finished %v before the kill and has no record; want every call older than %v stored",
				c.id, killAt.Sub(c.end).Round(time.Millisecond), syncWindow+insertSlack)
		}
	}
	t.Logf("complete calls before the kill: %d; without a record: %d; finished within %v of the kill: %d",
		len(complete), len(missing), syncWindow+insertSlack, lastWindow)
}
