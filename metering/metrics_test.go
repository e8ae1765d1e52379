package metering

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata")

// counterValue returns the value of the counter series of name with
// exactly the given labels, or fails the test when there is none.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, g, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v", name, labels)
	}
	return m.GetCounter().GetValue()
}

func findMetric(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			match := true
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					match = false
				}
			}
			if match {
				return m
			}
		}
	}
	return nil
}

// TestMeterMetricsGolden runs a fixed mix of calls and compares the
// metered series with a golden file: names, labels, help texts and values
// are part of the dashboards' contract. Run with -update to rewrite it.
func TestMeterMetricsGolden(t *testing.T) {
	env := newMeterEnv(t, Options{})
	ok := chatCompletion("deepseek-chat", "ok", `{"prompt_tokens":10000,"completion_tokens":500,"total_tokens":10500,"prompt_cache_hit_tokens":9000,"prompt_cache_miss_tokens":1000,"completion_tokens_details":{"reasoning_tokens":200}}`)

	call := env.meter.Begin("1", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{PageTab: "chat"})
	call.Response(200, jsonHeader())
	call.Write([]byte(ok))
	call.Finish(End{})

	call = env.meter.Begin("2", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{PageTab: "chat"})
	call.Response(200, sseHeader())
	call.Write([]byte(typicalStream(3)))
	call.Finish(End{})

	call = env.meter.Begin("3", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.Response(429, jsonHeader())
	call.Write([]byte(`{"error":{"message":"Rate Limit Reached"}}`))
	call.Finish(End{})

	call = env.meter.Begin("4", testStart, "/chat/completions", []byte(chatRequest("mystery", false)), Attribution{})
	call.Finish(End{StatusCode: 502})

	env.meter.ObservePassthrough(http.MethodGet, "/models", 200, 30*time.Millisecond)
	env.meter.ObservePassthrough(http.MethodGet, "/user/balance", 401, 30*time.Millisecond)
	env.meter.ObservePassthrough(http.MethodGet, "/secret/path/123", 404, 30*time.Millisecond)

	names := []string{
		"deepmeter_requests_total", "deepmeter_tokens_total", "deepmeter_cost_usd_total",
		"deepmeter_unpriced_calls_total", "deepmeter_passthrough_requests_total",
	}
	golden := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		var exposition strings.Builder
		for _, n := range names {
			exposition.WriteString(gatherText(t, env.reg, n))
		}
		if err := os.WriteFile(golden, []byte(exposition.String()), 0o644); err != nil {
			t.Fatalf("writing golden file: %v", err)
		}
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatalf("opening golden file (run with -update to create it): %v", err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(env.reg, f, names...); err != nil {
		t.Errorf("metrics differ from %s:\n%v", golden, err)
	}
}

// gatherText renders one metric family in the text exposition format.
func gatherText(t *testing.T, g prometheus.Gatherer, name string) string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			var b strings.Builder
			if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
				t.Fatalf("encoding %s: %v", name, err)
			}
			return b.String()
		}
	}
	return ""
}

// TestMeterMetricsHistograms observes call durations and times to the
// first byte, but no first byte for a call that got no response.
func TestMeterMetricsHistograms(t *testing.T) {
	env := newMeterEnv(t, Options{})
	env.run("/chat/completions", chatRequest("deepseek-chat", false),
		&response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(chatCompletion("deepseek-chat", "ok", usageJSON(1, 1, 0, 1)))}}, End{})
	env.clock.now = testStart
	env.run("/chat/completions", chatRequest("deepseek-chat", false), nil, End{StatusCode: 502})

	duration := findMetric(t, env.reg, "deepmeter_request_duration_seconds", map[string]string{}).GetHistogram()
	if duration.GetSampleCount() != 2 {
		t.Errorf("duration samples = %d, want 2", duration.GetSampleCount())
	}
	if got, want := duration.GetSampleSum(), 0.250+0.050; fmt.Sprintf("%.3f", got) != fmt.Sprintf("%.3f", want) {
		t.Errorf("duration sum = %v, want %v", got, want)
	}
	ttfb := findMetric(t, env.reg, "deepmeter_time_to_first_byte_seconds", map[string]string{}).GetHistogram()
	if ttfb.GetSampleCount() != 1 || fmt.Sprintf("%.3f", ttfb.GetSampleSum()) != "0.200" {
		t.Errorf("ttfb samples, sum = %d, %v; want 1, 0.2", ttfb.GetSampleCount(), ttfb.GetSampleSum())
	}
	if b := duration.GetBucket(); b[0].GetUpperBound() != 0.05 || b[len(b)-1].GetUpperBound() != 600 {
		t.Errorf("buckets run from %v to %v, want 0.05 to 600", b[0].GetUpperBound(), b[len(b)-1].GetUpperBound())
	}
}

// TestMeterMetricsLabelBounds sends more distinct models and page tabs
// than the label bound in successful calls: the series count must stop
// growing, so a client cannot blow up the metrics store.
func TestMeterMetricsLabelBounds(t *testing.T) {
	env := newMeterEnv(t, Options{})
	for i := 0; i < maxLabelValues+50; i++ {
		model := fmt.Sprintf("model-%d", i)
		call := env.meter.Begin(fmt.Sprint(i), testStart, "/chat/completions",
			[]byte(chatRequest(model, false)), Attribution{PageTab: fmt.Sprintf("tab-%d", i)})
		call.Response(200, jsonHeader())
		call.Write([]byte(chatCompletion(model, "ok", usageJSON(10, 10, 0, 10))))
		call.Finish(End{})
	}
	if n := testutil.CollectAndCount(env.meter.metrics.requests); n > maxLabelValues+1 {
		t.Errorf("requests_total has %d series, want at most %d", n, maxLabelValues+1)
	}
	if n := testutil.CollectAndCount(env.meter.metrics.unpriced); n != maxLabelValues+1 {
		t.Errorf("unpriced_calls_total has %d series, want %d", n, maxLabelValues+1)
	}
	if got := counterValue(t, env.reg, "deepmeter_unpriced_calls_total", map[string]string{"model": otherLabel}); got != 50 {
		t.Errorf("unpriced_calls_total{model=other} = %v, want 50", got)
	}
	if got := counterValue(t, env.reg, "deepmeter_requests_total",
		map[string]string{"model": otherLabel, "status_class": "2xx", "page_tab": otherLabel}); got != 50 {
		t.Errorf("requests_total{model=other,page_tab=other} = %v, want 50", got)
	}
}

// TestMeterMetricsFailedCallsKeepSlots sends more made-up model names and
// page tabs than the label bound in calls the upstream rejects, then real
// calls: the rejected calls must not take label values, or the real
// models would be counted as "other" until restart.
func TestMeterMetricsFailedCallsKeepSlots(t *testing.T) {
	env := newMeterEnv(t, Options{})
	for i := 0; i < maxLabelValues+30; i++ {
		call := env.meter.Begin(fmt.Sprint(i), testStart, "/chat/completions",
			[]byte(chatRequest(fmt.Sprintf("made-up-%d", i), false)), Attribution{PageTab: fmt.Sprintf("tab-%d", i)})
		call.Finish(End{StatusCode: 400})
	}
	rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
		&response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(chatCompletion("deepseek-chat", "ok", usageJSON(10, 10, 0, 10)))}}, End{})
	if !rec.Success {
		t.Fatalf("success = false (%q), want true", rec.ErrorMessage)
	}
	env.meter.Begin("priced-failure", testStart, "/chat/completions",
		[]byte(chatRequest("deepseek-reasoner", false)), Attribution{}).Finish(End{StatusCode: 400})

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"made-up models share other", map[string]string{"model": otherLabel, "status_class": "4xx", "page_tab": otherLabel}, maxLabelValues + 30},
		{"real model keeps its label", map[string]string{"model": "deepseek-chat", "status_class": "2xx", "page_tab": ""}, 1},
		{"failed call of a priced model keeps its label", map[string]string{"model": "deepseek-reasoner", "status_class": "4xx", "page_tab": ""}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counterValue(t, env.reg, "deepmeter_requests_total", tt.labels); got != tt.want {
				t.Errorf("requests_total%v = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
}

// TestMeterMetricsInvalidLabels passes invalid UTF-8 and very long values
// to labels, which would make client_golang panic if used as they are.
func TestMeterMetricsInvalidLabels(t *testing.T) {
	env := newMeterEnv(t, Options{})
	call := env.meter.Begin("x", testStart, "/chat/completions",
		[]byte(`{"model":"bad\xff`+strings.Repeat("m", 500)+`"}`), Attribution{PageTab: "\xfe\xff"})
	call.Finish(End{StatusCode: 400})
	if n := testutil.CollectAndCount(env.meter.metrics.requests); n != 1 {
		t.Errorf("requests_total has %d series, want 1", n)
	}
}

// TestPassthroughPathLabel keeps known DeepSeek paths and folds the rest
// into "other".
func TestPassthroughPathLabel(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/models", "/models"},
		{"/v1/models", "/v1/models"},
		{"/user/balance", "/user/balance"},
		{"/anthropic/v1/messages", "/anthropic/v1/messages"},
		{"/models/deepseek-chat", "other"},
		{"/../etc/passwd", "other"},
		{"", "other"},
	}
	for _, tt := range tests {
		if got := passthroughPathLabel(tt.path); got != tt.want {
			t.Errorf("passthroughPathLabel(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestStatusClass groups statuses as dashboards expect.
func TestStatusClass(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{{200, "2xx"}, {299, "2xx"}, {404, "4xx"}, {499, "4xx"}, {503, "5xx"}, {0, "none"}, {600, "none"}, {100, "1xx"}}
	for _, tt := range tests {
		if got := statusClass(tt.status); got != tt.want {
			t.Errorf("statusClass(%d) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

// TestMetersShareRegistry creates two Meters on one registry, as a test
// server or a restart within a process does. The second must reuse the
// collectors instead of panicking.
func TestMetersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewMeter(nil, nil, nil, reg, Options{})
	b := NewMeter(nil, nil, nil, reg, Options{})
	a.ObservePassthrough("GET", "/models", 200, time.Millisecond)
	b.ObservePassthrough("GET", "/models", 200, time.Millisecond)
	if got := counterValue(t, reg, "deepmeter_passthrough_requests_total", map[string]string{"path": "/models", "status_class": "2xx"}); got != 2 {
		t.Errorf("passthrough_requests_total = %v, want 2", got)
	}
}
