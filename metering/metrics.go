package metering

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

const namespace = "deepmeter"

// maxLabelValues bounds the distinct values of a label that comes from
// client or upstream input, such as a model name or a page tab. Values
// past the first maxLabelValues share the value otherLabel.
const (
	maxLabelValues = 100
	otherLabel     = "other"
)

// maxLabelRunes cuts a label value, in characters. Label values are also
// made valid UTF-8, which Prometheus requires.
const maxLabelRunes = 128

// callBuckets are the bounds, in seconds, of the latency histograms. An
// LLM call takes from tens of milliseconds (an error) to minutes (a long
// reasoning stream); DeepSeek closes a request still waiting after about
// ten minutes.
var callBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}

// meterMetrics are the Meter's Prometheus collectors.
type meterMetrics struct {
	requests            *prometheus.CounterVec
	tokens              *prometheus.CounterVec
	costUSD             prometheus.Counter
	duration            prometheus.Histogram
	ttfb                prometheus.Histogram
	unpriced            *prometheus.CounterVec
	passthrough         *prometheus.CounterVec
	passthroughDuration *prometheus.HistogramVec

	models         *labelSet
	pageTabs       *labelSet
	unpricedModels *labelSet
}

func newMeterMetrics(reg prometheus.Registerer) *meterMetrics {
	return &meterMetrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Metered calls by served model, status class and page tab.",
		}, []string{"model", "status_class", "page_tab"})),
		tokens: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "tokens_total",
			Help:      "Tokens reported by the upstream, by kind: prompt, completion, cache_hit, cache_miss, reasoning (a part of completion).",
		}, []string{"kind"})),
		costUSD: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "cost_usd_total",
			Help:      "Cost of priced calls billed in USD, in USD.",
		})),
		duration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time from the start of a metered call to the end of its response.",
			Buckets:   callBuckets,
		})),
		ttfb: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "time_to_first_byte_seconds",
			Help:      "Time from the start of a metered call to the first response byte.",
			Buckets:   callBuckets,
		})),
		unpriced: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "unpriced_calls_total",
			Help:      "Metered calls with no price for their model.",
		}, []string{"model"})),
		passthrough: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "passthrough_requests_total",
			Help:      "Forwarded requests that are not metered, by path and status class.",
		}, []string{"path", "status_class"})),
		passthroughDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "passthrough_request_duration_seconds",
			Help:      "Duration of forwarded requests that are not metered, by path.",
			Buckets:   callBuckets,
		}, []string{"path"})),

		models:         newLabelSet(maxLabelValues),
		pageTabs:       newLabelSet(maxLabelValues),
		unpricedModels: newLabelSet(maxLabelValues),
	}
}

// observe counts a finished record. ttfbKnown is false when no response
// arrived, so there is no first byte to time.
//
// Only a call that succeeded or whose model has a price may take a new
// model or page tab label value. Otherwise a client sending made-up model
// names, which the upstream rejects, would take every label value and
// leave real models counted as otherLabel until restart.
func (mm *meterMetrics) observe(r *store.Record, ttfbKnown bool) {
	claim := r.Success || r.PriceModel != ""
	mm.requests.WithLabelValues(mm.models.label(r.Model, claim), statusClass(r.StatusCode), mm.pageTabs.label(r.PageTab, claim)).Inc()

	for _, t := range []struct {
		kind  string
		count int64
	}{
		{"prompt", r.PromptTokens},
		{"completion", r.CompletionTokens},
		{"cache_hit", r.PromptCacheHitTokens},
		{"cache_miss", r.PromptCacheMissTokens},
		{"reasoning", r.ReasoningTokens},
	} {
		if t.count > 0 {
			mm.tokens.WithLabelValues(t.kind).Add(float64(t.count))
		}
	}

	if r.Priced && r.Currency == "USD" && r.Cost > 0 {
		mm.costUSD.Add(float64(r.Cost) / pricing.MoneyScale)
	}
	mm.duration.Observe(float64(r.ProcessingTimeMillis) / 1000)
	if ttfbKnown {
		mm.ttfb.Observe(float64(r.TTFBMillis) / 1000)
	}
}

// statusClass returns "2xx" for 200 to 299 and so on, or "none" for a
// status outside 100 to 599, such as 0 when no response came.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// passthroughPaths are the DeepSeek API paths kept as a label value as
// they are; any other path is counted as "other".
var passthroughPaths = map[string]bool{
	"/models":                true,
	"/v1/models":             true,
	"/user/balance":          true,
	"/v1/user/balance":       true,
	"/chat/completions":      true,
	"/v1/chat/completions":   true,
	"/beta/completions":      true,
	"/v1/completions":        true,
	"/anthropic/v1/messages": true,
	"/responses":             true,
	"/v1/responses":          true,
	"/files":                 true,
	"/v1/files":              true,
}

func passthroughPathLabel(path string) string {
	if passthroughPaths[path] {
		return path
	}
	return otherLabel
}

// labelSet bounds the values of one label: the first max distinct values
// are kept, later new values become otherLabel. It is safe for concurrent
// use.
type labelSet struct {
	max  int
	mu   sync.Mutex // guards seen
	seen map[string]struct{}
}

func newLabelSet(max int) *labelSet {
	return &labelSet{max: max, seen: make(map[string]struct{})}
}

// label returns the label value to use for v. When claim is false, a
// value not seen before becomes otherLabel without taking a slot.
func (s *labelSet) label(v string, claim bool) string {
	v = cutRunes(sanitize(v), maxLabelRunes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[v]; ok {
		return v
	}
	if !claim || len(s.seen) >= s.max {
		return otherLabel
	}
	s.seen[v] = struct{}{}
	return v
}

// register registers c on reg and returns it. When an equal collector is
// registered already, as happens when two Meters or Writers share a
// registry, it returns that one so both count into the same series. A nil
// reg registers nothing. Any other registration error is a programming
// error and panics, as prometheus.MustRegister does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
