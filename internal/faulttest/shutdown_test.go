package faulttest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/store"
)

// openSQLite opens the store a stopped deepmeter process wrote to.
func openSQLite(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// missingIDs returns the ids of calls that got a response id and have no
// record in st.
func missingIDs(t *testing.T, st store.Store, calls []call) []string {
	t.Helper()
	var missing []string
	for _, c := range calls {
		if c.id == "" {
			continue
		}
		_, err := st.Record(context.Background(), c.id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, c.id)
		case err != nil:
			t.Fatalf("read record %s: %v", c.id, err)
		}
	}
	return missing
}

// TestShutdownDuringStreams sends SIGTERM while short calls are done and
// long streams are still open. The streams that end within the grace
// period finish for the client, the longer ones are cut after it, and
// the process exits 0 with a record for every call, because a deploy
// must not lose the spend of the calls it interrupts.
func TestShutdownDuringStreams(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "deepmeter.db")
	upstream := startStandin(t)
	p := startProxy(t, "--upstream", upstream, "--database-url", dbURL, "--shutdown-grace", "1500ms")
	client := newClient()
	ctx := context.Background()

	var calls []call
	for i := 0; i < 20; i++ {
		calls = append(calls, doCall(ctx, client, p.url, chatBody(i, i%2 == 0), ""))
	}

	// Streams with 50 ms between events: 12 words end well within the
	// grace period, 400 words take far longer.
	var mu sync.Mutex
	var wg sync.WaitGroup
	var short, long []call
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := doCall(ctx, client, p.url, chatBody(100+i, true), "chunk_delay=50,words=12")
			mu.Lock()
			short = append(short, c)
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			c := doCall(ctx, client, p.url, chatBody(200+i, true), "chunk_delay=50,words=400")
			mu.Lock()
			long = append(long, c)
			mu.Unlock()
		}()
	}
	time.Sleep(200 * time.Millisecond)
	code := p.stop(t, syscall.SIGTERM, 30*time.Second)
	wg.Wait()

	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	for _, c := range short {
		if c.err != nil || c.status != 200 {
			t.Errorf("short stream %s: status %d, error %v; want 200 and a whole body", c.id, c.status, c.err)
		}
	}
	for _, c := range long {
		if c.err == nil {
			t.Errorf("long stream %s ended without an error, want it cut after the grace period", c.id)
		}
	}

	all := append(append(calls, short...), long...)
	for _, c := range all {
		if c.id == "" {
			t.Errorf("a call got no record id: status %d, error %v", c.status, c.err)
		}
	}
	st := openSQLite(t, dbURL)
	if missing := missingIDs(t, st, all); len(missing) > 0 {
		t.Errorf("%d of %d calls have no record: %v", len(missing), len(all), missing)
	}
	for _, c := range long {
		r, err := st.Record(ctx, c.id)
		if err == nil && (r.Success || r.HasFlag(store.FlagClientAborted) || !strings.Contains(r.ErrorMessage, "shutdown")) {
			t.Errorf("record of cut stream %s: success %t, flags %v, error %q; want a failed record that names the shutdown, not a client abort", c.id, r.Success, r.Flags, r.ErrorMessage)
		}
	}
}

// A second SIGTERM ends the process at once, for an operator who cannot
// wait for a long grace period to run out.
func TestSecondSignalEndsShutdown(t *testing.T) {
	dir := t.TempDir()
	upstream := startStandin(t)
	p := startProxy(t, "--upstream", upstream, "--database-url", "sqlite:"+filepath.Join(dir, "deepmeter.db"), "--shutdown-grace", "10m")
	client := newClient()

	done := make(chan call, 1)
	go func() {
		done <- doCall(context.Background(), client, p.url, chatBody(1, true), "chunk_delay=200,words=400")
	}()
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal waits for the stream, which runs far past this.
	select {
	case <-p.exited:
		t.Fatal("deepmeter exited on the first signal while a call was in flight")
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	code := p.stop(t, syscall.SIGTERM, 10*time.Second)
	if code == 0 {
		t.Errorf("exit code 0 after the second signal, want the signal's exit")
	}
	t.Logf("exited %v after the second signal", time.Since(start))
	<-done
}
