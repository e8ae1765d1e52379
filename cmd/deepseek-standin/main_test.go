package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRunServesAndStops checks the binary's life cycle: it serves the
// stand-in on the given address and returns nil after a graceful shutdown,
// also while a request is held open by a fault.
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1) // buffered so run never blocks on it
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--log-level", "debug"}, io.Discard, &logs, ready)
	}()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	}

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /models: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "deepseek-chat") {
		t.Errorf("GET /models = %d %s, want 200 with deepseek-chat", resp.StatusCode, body)
	}

	// A request held until the client leaves must not stall the shutdown.
	held, err := http.NewRequest(http.MethodGet, "http://"+addr+"/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	held.Header.Set("Authorization", "Bearer sk-test")
	held.Header.Set("X-Standin-Fault", "delay=3600000")
	go func() {
		if resp, err := http.DefaultClient.Do(held); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the held request reach its delay

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after shutdown", err)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("run did not return after cancel")
	}
	for _, want := range []string{"msg=serving", "msg=request", "msg=stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// TestRunFlags checks --version and the rejection of bad flags.
func TestRunFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string
		wantStdout string
	}{
		{"version", []string{"--version"}, "", "deepseek-standin dev\n"},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined", ""},
		{"bad log level", []string{"--log-level", "loud"}, "invalid --log-level", ""},
		{"extra argument", []string{"serve"}, "unexpected arguments", ""},
		{"bad address", []string{"--listen", "127.0.0.1:notaport"}, "listen on", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, io.Discard, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("run = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("run = %v, want an error containing %q", err, tt.wantErr)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
		})
	}
}
