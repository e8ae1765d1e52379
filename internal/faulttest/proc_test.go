package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/internal/standin"
)

// binary is the deepmeter binary built once for the package's tests.
var binary struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds cmd/deepmeter into a directory removed by TestMain.
func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "deepmeter-faulttest-")
		if err != nil {
			binary.err = err
			return
		}
		binDir = dir
		binary.path = filepath.Join(dir, "deepmeter")
		out, err := exec.Command("go", "build", "-o", binary.path, "github.com/deepmeter/deepmeter/cmd/deepmeter").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatalf("build deepmeter: %v", binary.err)
	}
	return binary.path
}

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// startStandin serves the DeepSeek stand-in on a loopback port.
func startStandin(t *testing.T) string {
	t.Helper()
	s := standin.New(standin.Options{})
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return srv.URL
}

// proxyProcess is a running deepmeter serve.
type proxyProcess struct {
	cmd       *exec.Cmd
	url       string // proxy listener
	adminURL  string
	exited    chan struct{} // closed when the process has exited
	exitErr   error         // valid after exited is closed
	logMu     sync.Mutex
	logOutput bytes.Buffer
}

// startProxy starts deepmeter serve with args and waits until it listens.
// The process is killed at the end of the test if it still runs.
func startProxy(t *testing.T, args ...string) *proxyProcess {
	t.Helper()
	args = append([]string{"serve",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info",
	}, args...)
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start deepmeter: %v", err)
	}

	started := make(chan map[string]any, 1)
	go func() {
		scanner := bufio.NewScanner(stderr)
		scanner.Buffer(make([]byte, 64<<10), 1<<20)
		for scanner.Scan() {
			line := scanner.Bytes()
			p.logMu.Lock()
			p.logOutput.Write(line)
			p.logOutput.WriteByte('\n')
			p.logMu.Unlock()
			var entry map[string]any
			if json.Unmarshal(line, &entry) == nil && entry["msg"] == "deepmeter started" {
				started <- entry
			}
		}
		io.Copy(io.Discard, stderr)
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("deepmeter log:\n%s", p.logs())
		}
	})

	select {
	case entry := <-started:
		p.url = "http://" + entry["listen"].(string)
		p.adminURL = "http://" + entry["admin_listen"].(string)
	case <-p.exited:
		t.Fatalf("deepmeter exited at start: %v\n%s", p.exitErr, p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("deepmeter did not start within 60s:\n%s", p.logs())
	}
	return p
}

func (p *proxyProcess) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.logOutput.String()
}

// signal sends sig and waits for the process to exit, returning its exit
// code.
func (p *proxyProcess) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v: %v", sig, err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("deepmeter did not exit within %v after %v:\n%s", timeout, sig, p.logs())
	}
	return p.cmd.ProcessState.ExitCode()
}

// cleanEnv returns the environment without DEEPMETER_ variables, so the
// flags of each test are all that configure the binary.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEEPMETER_") {
			env = append(env, kv)
		}
	}
	return env
}

// call is the outcome of one client call.
type call struct {
	id     string // X-DeepMeter-Request-Id, empty when the call failed before headers
	start  time.Time
	end    time.Time
	status int
	err    error
}

func (c call) latency() time.Duration { return c.end.Sub(c.start) }

// chatBody returns a small chat request; stream selects a streamed one.
func chatBody(i int, stream bool) string {
	return fmt.Sprintf(`{"model":"deepseek-chat","stream":%t,"messages":[{"role":"user","content":"question %d"}]}`, stream, i)
}

// doCall sends one chat call and reads the whole response.
func doCall(ctx context.Context, client *http.Client, url, body, fault string) call {
	c := call{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", strings.NewReader(body))
	if err != nil {
		c.err = err
		return c
	}
	req.Header.Set("Authorization", "Bearer sk-faulttest-key")
	req.Header.Set("Content-Type", "application/json")
	if fault != "" {
		req.Header.Set(standin.FaultHeader, fault)
	}
	resp, err := client.Do(req)
	if err != nil {
		c.err = err
		c.end = time.Now()
		return c
	}
	c.id = resp.Header.Get("X-DeepMeter-Request-Id")
	c.status = resp.StatusCode
	_, c.err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.end = time.Now()
	return c
}

// percentile returns the p-th percentile (0 to 100) of the latencies.
func percentile(calls []call, p float64) time.Duration {
	if len(calls) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(calls))
	for i, c := range calls {
		lat[i] = c.latency()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	idx := int(p / 100 * float64(len(lat)-1))
	return lat[idx]
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}
