package admin

import (
	"net"
	"sync"
	"time"
)

// Defaults of the per-address failure throttle.
const (
	// failureLimit is how many failed token checks an address may make in
	// one failureWindow before its requests get 429.
	failureLimit  = 10
	failureWindow = time.Minute
	// maxThrottled bounds the table of addresses. When it is full and no
	// entry has expired, an arbitrary entry is dropped, which forgives that
	// address its failures: a client that controls thousands of addresses
	// can guess faster anyway.
	maxThrottled = 4096
)

// throttle counts failed token checks per client address in fixed windows.
// It is safe for concurrent use.
type throttle struct {
	limit  int
	window time.Duration
	now    func() time.Time

	// mu guards entries.
	mu      sync.Mutex
	entries map[string]*failures
}

// failures is one address's count in the window that started at start.
type failures struct {
	start time.Time
	count int
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{limit: failureLimit, window: failureWindow, now: now, entries: map[string]*failures{}}
}

// blocked reports whether addr has used up its failures in the current
// window, and how long until the window ends.
func (t *throttle) blocked(addr string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.entries[addr]
	if !ok {
		return 0, false
	}
	left := f.start.Add(t.window).Sub(t.now())
	if left <= 0 {
		delete(t.entries, addr)
		return 0, false
	}
	return left, f.count >= t.limit
}

// fail counts a failure of addr. It returns the count in the current
// window, so a caller can log the first failure and the one that blocks.
func (t *throttle) fail(addr string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f, ok := t.entries[addr]
	if ok && !now.Before(f.start.Add(t.window)) {
		ok = false
	}
	if !ok {
		if len(t.entries) >= maxThrottled {
			t.evict(now)
		}
		f = &failures{start: now}
		t.entries[addr] = f
	}
	f.count++
	return f.count
}

// evict drops expired entries, or one arbitrary entry when none expired.
// t.mu must be held.
func (t *throttle) evict(now time.Time) {
	for addr, f := range t.entries {
		if !now.Before(f.start.Add(t.window)) {
			delete(t.entries, addr)
		}
	}
	if len(t.entries) < maxThrottled {
		return
	}
	for addr := range t.entries {
		delete(t.entries, addr)
		return
	}
}

// clientAddress returns the IP of a request's RemoteAddr, without the
// port, so every connection from one host shares a count.
func clientAddress(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
