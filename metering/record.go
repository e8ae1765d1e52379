package metering

import (
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// Error messages of records that failed without an upstream error.
const (
	msgEmptyResponse = "empty response"
	msgStreamCut     = "stream ended before the final chunk"
	msgNoUsage       = "response has no usage"
	msgInvalidUsage  = "response usage is invalid: prompt or completion tokens missing, negative or too large"
	msgNotJSON       = "response body is not valid JSON"
	msgClientAborted = "client closed the connection before the response ended"
	msgTimedOut      = "upstream timed out"
)

// buildRecord assembles the record of a finished call. It returns the
// usage to price, which is zero unless the upstream reported usage on a
// successful status.
func (c *Call) buildRecord(end End, finishedAt time.Time, decodeErr error) (store.Record, usage) {
	r := store.Record{
		ID:             c.id,
		CreatedAt:      c.start.UTC().Truncate(time.Microsecond),
		Endpoint:       cleanField(c.attr.Endpoint),
		UpstreamPath:   cleanField(c.upstreamPath),
		RequestedModel: c.req.model,
		Model:          c.req.model,
		Stream:         c.req.stream,
		StatusCode:     end.StatusCode,
		UsageSource:    store.UsageNone,
		Message:        c.req.message,
		RequestData:    c.req.data,
		UserID:         cleanField(c.attr.UserID),
		PageTab:        cleanField(c.attr.PageTab),
	}
	if r.Endpoint == "" {
		r.Endpoint = r.UpstreamPath
	}
	if r.UserID == "" {
		r.UserID = c.req.user
	}
	if r.StatusCode == 0 {
		r.StatusCode = c.status
	}
	r.ProcessingTimeMillis = max(finishedAt.Sub(c.start).Milliseconds(), 0)
	// Time to first byte counts from the first byte that carries content,
	// so the blank lines and keep-alives DeepSeek sends while a request
	// waits in its queue do not hide the wait.
	switch {
	case !c.firstPayloadAt.IsZero():
		r.TTFBMillis = max(c.firstPayloadAt.Sub(c.start).Milliseconds(), 0)
	case !c.firstByteAt.IsZero():
		r.TTFBMillis = max(c.firstByteAt.Sub(c.start).Milliseconds(), 0)
	case c.hasHead:
		r.TTFBMillis = max(c.headAt.Sub(c.start).Milliseconds(), 0)
	}

	var flags []string
	if c.req.truncated {
		flags = append(flags, store.FlagRequestTruncated)
	}
	if end.ClientAborted {
		flags = append(flags, store.FlagClientAborted)
	}
	if end.TimedOut {
		flags = append(flags, store.FlagTimedOut)
	}

	out := c.outcome()
	r.ResponseData = out.data
	if out.truncated {
		flags = append(flags, store.FlagResponseTruncated)
	}
	if out.model != "" {
		r.Model = out.model
	}

	// A body cut by an abort or a transport error ends in the middle of
	// the compressed data or of the JSON; the cut is the cause, not the
	// encoding or the upstream.
	cut := end.Err != nil || end.ClientAborted || end.TimedOut
	if errors.Is(decodeErr, io.ErrUnexpectedEOF) && cut {
		decodeErr = nil
	}
	decodeFailed := decodeErr != nil || c.badEncoding != "" || (out.unreadable && !cut)
	if decodeFailed {
		flags = append(flags, store.FlagDecodeFailed)
	}

	// Usage is read only from a 2xx response, and an error status always
	// prices at zero tokens.
	failedStatus := r.StatusCode >= 400 || c.status >= 400
	okStatus := !failedStatus && r.StatusCode >= 200 && r.StatusCode < 300
	var priced usage
	switch {
	case out.hasUsage && !out.usage.invalid && okStatus:
		priced = out.usage
		r.UsageSource = store.UsageReported
		r.PromptTokens = out.usage.prompt
		r.CompletionTokens = out.usage.completion
		r.TotalTokens = out.usage.total
		r.PromptCacheHitTokens = out.usage.hit
		r.PromptCacheMissTokens = out.usage.miss
		r.ReasoningTokens = out.usage.reasoning
		if out.usage.mismatch {
			flags = append(flags, store.FlagUsageMismatch)
		}
	case okStatus:
		if out.hasUsage {
			flags = append(flags, store.FlagUsageInvalid)
		} else {
			flags = append(flags, store.FlagUsageMissing)
		}
		if est, ok := c.estimate(out, out.empty && !cut && !decodeFailed); ok {
			priced = est
			r.UsageSource = store.UsageEstimated
			r.PromptTokens = est.prompt
			r.CompletionTokens = est.completion
			r.TotalTokens = est.total
			r.PromptCacheMissTokens = est.miss
		}
	}

	r.Success = okStatus && !cut && !decodeFailed && out.hasUsage && !out.usage.invalid && out.complete && out.errMsg == ""
	if !r.Success {
		r.ErrorMessage = errorText(failureReason(c, end, out, failedStatus, decodeErr))
	}

	slices.Sort(flags)
	r.Flags = slices.Compact(flags)
	return r, priced
}

// estimate returns the usage estimated from the request's text and the
// completion text that arrived, for a call whose usage never came. With
// no cache split known, the whole prompt counts as cache misses, which
// bounds the cost from above. It returns false when there is nothing to
// estimate from: no text at all, or emptyAnswer, a 200 that ended cleanly
// with an empty body, which is the upstream's overload answer and
// generated nothing.
func (c *Call) estimate(out outcome, emptyAnswer bool) (usage, bool) {
	if emptyAnswer {
		return usage{}, false
	}
	// The caps keep estimates within maxTokenCount like reported usage,
	// which the stores' token sums rely on.
	prompt := min(c.req.promptTokens, maxTokenCount/2)
	u := usage{prompt: prompt, miss: prompt, completion: min(out.completionEstimate, maxTokenCount/2)}
	u.total = u.prompt + u.completion
	return u, u.total > 0
}

// outcome returns what the response body gave, or an empty outcome when
// no body parser started because no response arrived.
func (c *Call) outcome() outcome {
	switch {
	case c.stream != nil:
		return c.stream.outcome(c.m.maxStored)
	case c.jsonBody != nil:
		return c.jsonBody.outcome(c.status)
	}
	return outcome{empty: true}
}

// failureReason picks the most telling reason a call failed: the
// upstream's own error first, then the transport, then what was wrong
// with the body.
func failureReason(c *Call, end End, out outcome, failedStatus bool, decodeErr error) string {
	switch {
	case end.TimedOut:
		return msgTimedOut
	case failedStatus && out.errMsg != "":
		return out.errMsg
	case failedStatus && end.Err == nil:
		return statusText(max(c.status, end.StatusCode))
	case end.Err != nil:
		return end.Err.Error()
	case end.ClientAborted:
		return msgClientAborted
	case out.errMsg != "":
		return out.errMsg
	case c.badEncoding != "":
		return "response body could not be decoded: unsupported content encoding " + c.badEncoding
	case decodeErr != nil:
		return "response body could not be decoded: " + decodeErr.Error()
	case out.empty:
		return msgEmptyResponse
	case out.unreadable && c.stream != nil:
		return "stream carried no JSON events"
	case out.unreadable:
		return msgNotJSON
	case !out.complete:
		return msgStreamCut
	case !out.hasUsage:
		return msgNoUsage
	case out.usage.invalid:
		return msgInvalidUsage
	}
	return statusText(end.StatusCode)
}

// errorText makes a failure reason fit error_message: valid UTF-8,
// without API keys, at most maxErrorRunes characters.
func errorText(s string) string {
	s = MaskSecrets(sanitize(s))
	return cutRunesMasked(strings.TrimSpace(s), maxErrorRunes)
}

// price sets the cost fields of r from the served model's price at the
// call's start, falling back to the requested model's price.
//
// A call with an error status or without any usage costs exactly 0 and
// is priced, in the currency of the model's price when one matches and
// in USD otherwise, because the upstream reports no tokens for it. A 2xx call
// whose usage arrived, reported or estimated, is charged even when the
// stream was cut later or the client left, because DeepSeek bills the
// tokens it produced. Only such a call for a model without a price is
// unpriced.
func (m *Meter) price(r *store.Record, u usage) {
	price, ok := m.lookupPrice(r)
	if r.StatusCode >= 400 || r.UsageSource == store.UsageNone {
		r.Priced = true
		r.Cost = 0
		r.Currency = "USD"
		if ok {
			setPrice(r, price)
		}
		return
	}
	if !ok {
		r.Flags = addFlag(r.Flags, store.FlagUnpriced)
		m.noteUnpriced(r.Model)
		return
	}

	cost, err := price.Cost(pricing.Usage{
		PromptTokens:     u.prompt,
		CacheHitTokens:   u.hit,
		CacheMissTokens:  u.miss,
		CompletionTokens: u.completion,
		HasCacheSplit:    u.hasSplit,
	})
	if err != nil {
		r.Flags = addFlag(r.Flags, store.FlagUnpriced)
		m.metrics.unpriced.WithLabelValues(m.metrics.unpricedModels.label(r.Model, true)).Inc()
		m.logger.Warn("cannot price call", "id", r.ID, "model", r.Model, "error", err)
		return
	}
	r.Priced = true
	r.Cost = cost
	setPrice(r, price)
}

// setPrice copies the price entry's currency, model, start and rates to r.
func setPrice(r *store.Record, price pricing.Price) {
	r.Currency = price.Currency
	r.PriceModel = price.Model
	r.PriceEffectiveFrom = price.EffectiveFrom.UTC()
	r.PriceHit = price.Rates.Hit
	r.PriceMiss = price.Rates.Miss
	r.PriceOutput = price.Rates.Output
}

func (m *Meter) lookupPrice(r *store.Record) (pricing.Price, bool) {
	if m.prices == nil {
		return pricing.Price{}, false
	}
	for _, model := range []string{r.Model, r.RequestedModel} {
		if model == "" {
			continue
		}
		if price, ok := m.prices.Lookup(model, r.CreatedAt); ok {
			return price, true
		}
	}
	return pricing.Price{}, false
}

// noteUnpriced counts a call without a price and logs the model the first
// time it is seen, up to maxWarnedModels models.
func (m *Meter) noteUnpriced(model string) {
	m.metrics.unpriced.WithLabelValues(m.metrics.unpricedModels.label(model, true)).Inc()

	m.warnedMu.Lock()
	_, seen := m.warned[model]
	first := !seen && len(m.warned) < maxWarnedModels
	if first {
		m.warned[model] = struct{}{}
	}
	m.warnedMu.Unlock()
	if first {
		m.logger.Warn("no price for model; its calls are recorded unpriced", "model", model)
	}
}

// addFlag adds flag to sorted flags, keeping them sorted and unique.
func addFlag(flags []string, flag string) []string {
	i, found := slices.BinarySearch(flags, flag)
	if found {
		return flags
	}
	return slices.Insert(flags, i, flag)
}
