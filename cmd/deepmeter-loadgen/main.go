// Command deepmeter-loadgen measures what deepmeter adds to a call. It
// starts the DeepSeek stand-in, a bare httputil.ReverseProxy with nothing
// added, and deepmeter on SQLite (and on Postgres when a database URL is
// given), each as its own process on loopback ports. It then sends the
// same load to each target in alternating rounds and prints latency
// percentiles, throughput, CPU time per call and resident memory.
// `make bench` runs it.
//
// Usage:
//
//	deepmeter-loadgen [--deepmeter bin/deepmeter] [--standin bin/deepseek-standin]
//	                  [--duration 3s] [--rounds 2] [--postgres URL]
//	deepmeter-loadgen bare --listen ADDR --upstream URL
//
// Every server listens on 127.0.0.1 only. --postgres (default: the
// DEEPMETER_TEST_DATABASE_URL environment variable) names a server where a
// fresh schema is created for the run and dropped after it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		if err := runBare(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

// runBare serves a bare httputil.ReverseProxy: the floor for any Go proxy.
func runBare(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := fs.String("upstream", "", "upstream base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("invalid --upstream %q", *upstream)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	// Failed calls are counted by the load generator; the log would only
	// repeat them.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, ForceAttemptHTTP2: false}
	return http.ListenAndServe(*listen, rp)
}

type options struct {
	deepmeter, standin string
	duration           time.Duration
	rounds             int
	postgres           string
	rates              []int
	workers            int
	profile            string
	profileStream      bool
}

func run(args []string) error {
	fs := flag.NewFlagSet("deepmeter-loadgen", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.deepmeter, "deepmeter", "bin/deepmeter", "path of the deepmeter binary")
	fs.StringVar(&o.standin, "standin", "bin/deepseek-standin", "path of the deepseek-standin binary")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one round of one load on one target")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds per load; targets alternate within each round")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("DEEPMETER_TEST_DATABASE_URL"), "Postgres server URL for the Postgres store; empty skips it")
	rates := fs.String("rates", "1000,2000", "fixed rates in calls per second, comma-separated")
	fs.IntVar(&o.workers, "workers", 32, "concurrent clients of the saturation load")
	fs.StringVar(&o.profile, "profile", "deepmeter-cpu.pprof", "file for a CPU profile of deepmeter (SQLite) under the non-stream saturation load; empty skips it")
	fs.BoolVar(&o.profileStream, "profile-stream", false, "take the CPU profile under the stream saturation load instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("invalid --rates %q: expected positive integers such as 1000,2000", *rates)
		}
		o.rates = append(o.rates, n)
	}

	work, err := os.MkdirTemp("", "deepmeter-loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	standin, err := startProcess("stand-in", o.standin, "--listen", "{addr}", "--log-level", "error")
	if err != nil {
		return err
	}
	procs = append(procs, standin)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, err := startProcess("bare proxy", self, "bare", "--listen", "{addr}", "--upstream", standin.url)
	if err != nil {
		return err
	}
	procs = append(procs, bare)
	targets := []*process{standin, bare}
	standin.name, bare.name = "direct", "bare proxy"

	sqlite, err := startDeepmeter(o.deepmeter, "deepmeter sqlite", standin.url, "sqlite:"+filepath.Join(work, "bench.db"), filepath.Join(work, "spool-sqlite"))
	if err != nil {
		return err
	}
	procs = append(procs, sqlite)
	targets = append(targets, sqlite)

	if o.postgres != "" {
		pgURL, drop, err := freshSchema(o.postgres)
		if err != nil {
			return err
		}
		defer drop()
		pg, err := startDeepmeter(o.deepmeter, "deepmeter postgres", standin.url, pgURL, filepath.Join(work, "spool-pg"))
		if err != nil {
			return err
		}
		procs = append(procs, pg)
		targets = append(targets, pg)
	} else {
		fmt.Println("NOTE: no --postgres and no DEEPMETER_TEST_DATABASE_URL: the Postgres store is not measured.")
	}

	fmt.Printf("deepmeter-loadgen: %d rounds of %v per load and target, targets alternating within each round\n\n", o.rounds, o.duration)
	var loads []load
	for _, rate := range o.rates {
		loads = append(loads, load{name: fmt.Sprintf("non-stream %d/s", rate), rate: rate})
	}
	for _, rate := range o.rates {
		loads = append(loads, load{name: fmt.Sprintf("stream %d/s", rate), rate: rate, stream: true})
	}
	loads = append(loads, load{name: fmt.Sprintf("non-stream saturation (%d clients)", o.workers), workers: o.workers})
	loads = append(loads, load{name: fmt.Sprintf("stream saturation (%d clients)", o.workers), workers: o.workers, stream: true})

	client := newClient(4096)
	for _, ld := range loads {
		results := map[*process]*runResult{}
		for _, t := range targets {
			results[t] = &runResult{}
		}
		for round := 0; round < o.rounds; round++ {
			for _, t := range targets {
				cpu0 := t.cpuTime()
				r := ld.run(client, t.url, o.duration)
				r.cpu = t.cpuTime() - cpu0
				results[t].merge(r)
			}
		}
		printLoad(ld, targets, results)
	}

	if o.profile != "" {
		if err := profileCPU(client, sqlite, o); err != nil {
			return err
		}
	}

	// A fresh process, so the heap the loads above grew does not count.
	fresh, err := startDeepmeter(o.deepmeter, "deepmeter sqlite", standin.url, "sqlite:"+filepath.Join(work, "memory.db"), filepath.Join(work, "spool-memory"))
	if err != nil {
		return err
	}
	procs = append(procs, fresh)
	fmt.Println("## Resident memory of a fresh deepmeter process (SQLite store)")
	fmt.Println()
	if err := measureMemory(client, fresh); err != nil {
		return err
	}
	return nil
}

// process is a server started by the load generator.
type process struct {
	name     string
	cmd      *exec.Cmd
	url      string
	adminURL string // deepmeter only
}

// startProcess runs bin with args, replacing "{addr}" with a free
// loopback address, and waits until it accepts connections.
func startProcess(name, bin string, args ...string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w; run make build first", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not listen on %s within 30s", name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startDeepmeter(bin, name, upstream, databaseURL, spoolDir string) (*process, error) {
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(name, bin, "serve", "--listen", "{addr}", "--admin-listen", admin,
		"--upstream", upstream, "--database-url", databaseURL, "--spool-dir", spoolDir,
		"--admin-token", adminToken, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	p.name = name
	p.adminURL = "http://" + admin
	return p, nil
}

// adminToken is the admin token of the deepmeter processes, used only to
// fetch profiles from their loopback admin listeners.
var adminToken = func() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// profileCPU records a CPU profile of p while the non-stream saturation
// load, or the stream one with o.profileStream, runs against it, saves it
// to o.profile and prints its top entries.
func profileCPU(client *http.Client, p *process, o options) error {
	seconds := max(1, int(o.duration/time.Second))
	kind := "non-stream"
	if o.profileStream {
		kind = "stream"
	}
	fmt.Printf("## CPU profile of %s under %s saturation (%d clients, %ds)\n\n", p.name, kind, o.workers, seconds)
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.adminURL, seconds), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
		}
		got <- result{data, err}
	}()
	load{workers: o.workers, stream: o.profileStream}.run(client, p.url, time.Duration(seconds)*time.Second+500*time.Millisecond)
	r := <-got
	if r.err != nil {
		return fmt.Errorf("fetch the CPU profile: %w", r.err)
	}
	if err := os.WriteFile(o.profile, r.data, 0o644); err != nil {
		return err
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", o.deepmeter, o.profile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w\n%s", err, out)
	}
	fmt.Printf("Saved to %s. `go tool pprof -top -nodecount=30 %s %s`:\n\n```\n%s```\n\n", o.profile, o.deepmeter, o.profile, out)
	return nil
}

func (p *process) stop() {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// cpuTime returns the user plus system CPU time the process used so far.
func (p *process) cpuTime() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// Linux reports clock ticks of 1/100 s (USER_HZ) on every common build.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// rss returns the resident set size of the process in bytes.
func (p *process) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// freshSchema creates a schema for the run on the Postgres server at base
// and returns a URL that uses it, and a function that drops it.
func freshSchema(base string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to the Postgres server: %w", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "dm_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			log.Printf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			log.Printf("drop schema %s: %v", schema, err)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func newClient(maxConns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		DisableCompression:  true,
	}}
}

// sample is one call's outcome.
type sample struct {
	total, ttfb time.Duration
	failed      bool
}

// call sends one chat call and reads the whole response.
func call(client *http.Client, base string, stream bool, fault string) sample {
	body := `{"model":"deepseek-chat","messages":[{"role":"user","content":"Say hello in 12 words"}]}`
	if stream {
		body = `{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in 12 words"}]}`
	}
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, base+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-loadgen-key")
	req.Header.Set("Content-Type", "application/json")
	if fault != "" {
		req.Header.Set("X-Standin-Fault", fault)
	}
	resp, err := client.Do(req)
	if err != nil {
		return sample{total: time.Since(start), failed: true}
	}
	defer resp.Body.Close()
	var first [1]byte
	_, err = io.ReadFull(resp.Body, first[:])
	ttfb := time.Since(start)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return sample{total: time.Since(start), ttfb: ttfb, failed: err != nil || resp.StatusCode != 200}
}

// load is one kind of traffic: a fixed rate, or saturation by workers
// clients that each send the next call as soon as one ends.
type load struct {
	name    string
	rate    int
	workers int
	stream  bool
}

// runResult is the outcome of one load on one target.
type runResult struct {
	samples []sample
	elapsed time.Duration
	cpu     time.Duration
	skipped int // fixed-rate calls not sent because too many were open
}

func (r *runResult) merge(o *runResult) {
	r.samples = append(r.samples, o.samples...)
	r.elapsed += o.elapsed
	r.cpu += o.cpu
	r.skipped += o.skipped
}

// maxOpen bounds the calls open at once in a fixed-rate load, so a target
// that falls behind does not exhaust file descriptors.
const maxOpen = 2000

func (ld load) run(client *http.Client, base string, d time.Duration) *runResult {
	res := &runResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(s sample) {
		mu.Lock()
		res.samples = append(res.samples, s)
		mu.Unlock()
	}
	start := time.Now()
	if ld.workers > 0 {
		for w := 0; w < ld.workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < d {
					add(call(client, base, ld.stream, ""))
				}
			}()
		}
		wg.Wait()
		res.elapsed = time.Since(start)
		return res
	}

	interval := time.Second / time.Duration(ld.rate)
	var open atomic.Int64
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		if open.Load() >= maxOpen {
			res.skipped++
			continue
		}
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Add(-1)
			add(call(client, base, ld.stream, ""))
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func percentiles(samples []sample, ttfb bool) []time.Duration {
	var lat []time.Duration
	for _, s := range samples {
		if s.failed {
			continue
		}
		if ttfb {
			lat = append(lat, s.ttfb)
		} else {
			lat = append(lat, s.total)
		}
	}
	if len(lat) == 0 {
		return make([]time.Duration, 4)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(p float64) time.Duration { return lat[int(p/100*float64(len(lat)-1))] }
	return []time.Duration{at(50), at(90), at(99), at(99.9)}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func printLoad(ld load, targets []*process, results map[*process]*runResult) {
	fmt.Printf("## %s\n\n", ld.name)
	fmt.Println("| target | calls | failed | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs | CPU µs/call |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	kinds := []bool{false}
	if ld.stream {
		kinds = []bool{true, false}
	}
	for _, t := range targets {
		r := results[t]
		failed := 0
		for _, s := range r.samples {
			if s.failed {
				failed++
			}
		}
		ok := len(r.samples) - failed
		cpu := "-"
		if t.name != "direct" && ok > 0 {
			cpu = fmt.Sprintf("%.0f", float64(r.cpu)/float64(time.Microsecond)/float64(ok))
		}
		for _, ttfb := range kinds {
			p := percentiles(r.samples, ttfb)
			label := t.name
			if ld.stream && ttfb {
				label += " (TTFB)"
			} else if ld.stream {
				label += " (total)"
			}
			fmt.Printf("| %s | %d | %d | %.0f | %s | %s | %s | %s | %s |\n", label, len(r.samples), failed+r.skipped,
				float64(ok)/r.elapsed.Seconds(), us(p[0]), us(p[1]), us(p[2]), us(p[3]), cpu)
		}
	}

	// Added latency: each proxy minus direct, and deepmeter's added
	// latency as a multiple of the bare proxy's.
	direct := percentiles(results[targets[0]].samples, false)
	bare := percentiles(results[targets[1]].samples, false)
	addedBare := []time.Duration{bare[0] - direct[0], bare[2] - direct[2]}
	fmt.Println()
	fmt.Printf("added latency (total): bare proxy p50 %s µs, p99 %s µs\n", us(addedBare[0]), us(addedBare[1]))
	for _, t := range targets[2:] {
		p := percentiles(results[t].samples, false)
		added := []time.Duration{p[0] - direct[0], p[2] - direct[2]}
		fmt.Printf("added latency (total): %s p50 %s µs (%s x bare), p99 %s µs (%s x bare)\n", t.name,
			us(added[0]), ratio(added[0], addedBare[0]), us(added[1]), ratio(added[1], addedBare[1]))
		if ld.workers > 0 {
			bareRate := float64(len(results[targets[1]].samples)) / results[targets[1]].elapsed.Seconds()
			rate := float64(len(results[t].samples)) / results[t].elapsed.Seconds()
			fmt.Printf("saturation throughput: %s %.0f%% of the bare proxy's\n", t.name, 100*rate/bareRate)
		}
	}
	fmt.Println()
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// measureMemory samples deepmeter's RSS while 1,000 streams are open at
// once, and while one 50 MiB response passes.
func measureMemory(client *http.Client, p *process) error {
	base := p.rss()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := p.rss(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// 1,000 streams of 60 words with 100 ms between events stay open
	// together for a few seconds.
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := call(client, p.url, true, "chunk_delay=100,words=60"); s.failed {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	fmt.Printf("1,000 concurrent streams (%v): RSS before %.1f MiB, peak %.1f MiB, after %.1f MiB; %d failed\n",
		time.Since(start).Round(time.Millisecond), mib(base), mib(peak.Load()), mib(p.rss()), failed.Load())

	before := p.rss()
	peak.Store(0)
	stop = make(chan struct{})
	sampled = make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := p.rss(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	s := call(client, p.url, false, "size=52428800")
	close(stop)
	<-sampled
	if s.failed {
		return errors.New("the 50 MiB call failed")
	}
	fmt.Printf("one 50 MiB response (%v): RSS before %.1f MiB, peak %.1f MiB, after %.1f MiB\n",
		s.total.Round(time.Millisecond), mib(before), mib(peak.Load()), mib(p.rss()))
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
