package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Options configures a [Server]. The zero value serves the default models
// and balance and logs nothing.
type Options struct {
	// Models lists the model names that requests may name and /models
	// returns. Empty means deepseek-chat, deepseek-reasoner,
	// deepseek-v4-flash, deepseek-v4-pro and deepseek-flash.
	Models []string

	// ServedAs maps a requested model to the model that the response names,
	// as DeepSeek did when it served deepseek-chat with deepseek-v4-flash. A
	// key is accepted as a request model even when Models lacks it. Models
	// not in the map are served as requested.
	ServedAs map[string]string

	// Balances are the entries that /user/balance returns. Empty means one USD entry of
	// 110.00, of which 10.00 is granted and 100.00 topped up.
	Balances []BalanceInfo

	// Created is the Unix time every completion reports as created. Zero
	// means 1767225600 (2026-01-01T00:00:00Z).
	Created int64

	// MaxRequestBytes bounds a request body; a longer one gets 413. Zero
	// means 64 MiB.
	MaxRequestBytes int64

	// Logger receives a debug line per request. Nil discards.
	Logger *slog.Logger
}

// BalanceInfo is one currency entry of the /user/balance response. Amounts are
// decimal strings, as DeepSeek sends them.
type BalanceInfo struct {
	Currency        string `json:"currency"`
	TotalBalance    string `json:"total_balance"`
	GrantedBalance  string `json:"granted_balance"`
	ToppedUpBalance string `json:"topped_up_balance"`
}

// Server is the stand-in. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	models   []string
	known    map[string]bool
	servedAs map[string]string
	balances []BalanceInfo
	created  int64
	maxBody  int64
	log      *slog.Logger

	done      chan struct{} // closed by Close to end held and waiting requests
	closeOnce sync.Once
}

// DefaultModels are the models served when [Options.Models] is empty.
var DefaultModels = []string{"deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro", "deepseek-flash"}

const (
	defaultCreated         = 1767225600
	defaultMaxRequestBytes = 64 << 20
	systemFingerprint      = "fp_standin"
)

// New returns a Server configured by opts.
func New(opts Options) *Server {
	s := &Server{
		models:   opts.Models,
		known:    make(map[string]bool),
		servedAs: opts.ServedAs,
		balances: opts.Balances,
		created:  opts.Created,
		maxBody:  opts.MaxRequestBytes,
		log:      opts.Logger,
		done:     make(chan struct{}),
	}
	if len(s.models) == 0 {
		s.models = slices.Clone(DefaultModels)
	}
	for _, m := range s.models {
		s.known[m] = true
	}
	for m := range s.servedAs {
		s.known[m] = true
	}
	if len(s.balances) == 0 {
		s.balances = []BalanceInfo{{Currency: "USD", TotalBalance: "110.00", GrantedBalance: "10.00", ToppedUpBalance: "100.00"}}
	}
	if s.created == 0 {
		s.created = defaultCreated
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxRequestBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Close ends the requests that are waiting or holding a connection open
// (delay, keepalive_delay, chunk_delay, hang), so that an http.Server can
// shut down. It does not stop new requests, whose waits then end at once.
// Calling Close more than once is safe.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// endpoint is a served path.
type endpoint int

const (
	endpointChat endpoint = iota
	endpointFIM
	endpointMessages
	endpointModels
	endpointBalance
)

var endpoints = map[string]struct {
	id     endpoint
	method string
}{
	"/chat/completions":      {endpointChat, http.MethodPost},
	"/beta/completions":      {endpointFIM, http.MethodPost},
	"/anthropic/v1/messages": {endpointMessages, http.MethodPost},
	"/models":                {endpointModels, http.MethodGet},
	"/user/balance":          {endpointBalance, http.MethodGet},
}

// ServeHTTP serves one request. The steps run in a fixed order: route and
// method, fault header, delay, reset, authentication, status and empty
// faults, then the endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
		path = "/" + rest
	}
	ep, ok := endpoints[path]
	if !ok {
		s.reject(w, r, apiError{status: http.StatusNotFound, message: "Not Found", typ: typeInvalidRequest, code: typeInvalidRequest})
		return
	}
	if r.Method != ep.method {
		w.Header().Set("Allow", ep.method)
		s.reject(w, r, apiError{status: http.StatusMethodNotAllowed, message: "Method Not Allowed", typ: typeInvalidRequest, code: typeInvalidRequest})
		return
	}

	f, err := parseFault(r.Header.Values(FaultHeader))
	if err != nil {
		s.reject(w, r, faultHeaderError(err))
		return
	}
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "faults", strings.Join(f.keys, ","))

	if !s.sleep(r.Context(), f.delay) {
		return
	}
	if f.reset {
		resetConn(w)
		return
	}
	key, ok := apiKey(r, ep.id == endpointMessages)
	if !ok {
		s.reject(w, r, authFailure(key))
		return
	}
	if f.status != 0 {
		s.serveStatusFault(w, r, f, key)
		return
	}
	if f.empty {
		s.serveEmpty(w, r, f)
		return
	}

	switch ep.id {
	case endpointModels, endpointBalance:
		s.serveInfo(w, r, f, ep.id)
	default:
		body, apiErr := s.readBody(r)
		if apiErr != nil {
			s.reject(w, r, *apiErr)
			return
		}
		switch ep.id {
		case endpointChat:
			s.serveCompletion(w, r, f, body, s.parseChat, s.writeChatJSON, s.streamChat)
		case endpointFIM:
			s.serveCompletion(w, r, f, body, s.parseFIM, s.writeFIMJSON, s.streamFIM)
		default:
			s.serveCompletion(w, r, f, body, s.parseMessages, s.writeMessagesJSON, s.streamMessages)
		}
	}
}

// apiKey returns the request's key and whether it is valid: present and
// starting with "sk-". /anthropic reads x-api-key first.
func apiKey(r *http.Request, anthropic bool) (string, bool) {
	key := ""
	if anthropic {
		key = r.Header.Get("x-api-key")
	}
	if key == "" {
		auth := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(token)
		}
	}
	return key, strings.HasPrefix(key, "sk-")
}

func (s *Server) readBody(r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		e := invalidRequest(fmt.Sprintf("Failed to read the request body: %v", err))
		return nil, &e
	}
	if int64(len(body)) > s.maxBody {
		e := apiError{
			status:  http.StatusRequestEntityTooLarge,
			message: fmt.Sprintf("Request body is larger than the limit of %d bytes", s.maxBody),
			typ:     typeInvalidRequest,
			code:    typeInvalidRequest,
		}
		return nil, &e
	}
	return body, nil
}

// serveStatusFault writes the DeepSeek error response for status=N.
func (s *Server) serveStatusFault(w http.ResponseWriter, r *http.Request, f *fault, key string) {
	if err := f.checkMode(modeError, true); err != nil {
		s.reject(w, r, faultHeaderError(err))
		return
	}
	e := statusError(f.status, key)
	o := s.newOutput(w, r, f, false)
	if f.plain {
		o.start(e.status, "text/plain; charset=utf-8")
		o.writeString(plainInvalidParameters)
	} else {
		o.start(e.status, "application/json")
		o.write(e.body())
	}
	o.finish()
}

// serveEmpty writes the response for empty=1: 200, the keep-alives if any,
// and no body, as DeepSeek did under overload.
func (s *Server) serveEmpty(w http.ResponseWriter, r *http.Request, f *fault) {
	if err := f.checkMode(modeEmpty, true); err != nil {
		s.reject(w, r, faultHeaderError(err))
		return
	}
	o := s.newOutput(w, r, f, false)
	if f.keepalive == 0 {
		w.Header().Set("Content-Length", "0")
	}
	if !s.startOK(r.Context(), o) {
		return
	}
	o.finish()
}

// serveInfo writes the /models and /user/balance responses.
func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request, f *fault, ep endpoint) {
	if err := f.checkMode(modeJSON, false); err != nil {
		s.reject(w, r, faultHeaderError(err))
		return
	}

	var body []byte
	if ep == endpointModels {
		type model struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
		}
		list := struct {
			Object string  `json:"object"`
			Data   []model `json:"data"`
		}{Object: "list", Data: []model{}}
		for _, m := range s.models {
			list.Data = append(list.Data, model{ID: m, Object: "model", OwnedBy: "deepseek"})
		}
		body = marshal(list)
	} else {
		body = marshal(struct {
			IsAvailable  bool          `json:"is_available"`
			BalanceInfos []BalanceInfo `json:"balance_infos"`
		}{IsAvailable: true, BalanceInfos: s.balances})
	}

	o := s.newOutput(w, r, f, false)
	if !s.startOK(r.Context(), o) {
		return
	}
	o.write(body)
	o.finish()
}

// servedModel returns the model a response names for a requested model.
func (s *Server) servedModel(requested string) string {
	if m, ok := s.servedAs[requested]; ok {
		return m
	}
	return requested
}

// checkModel returns the 400 for a model that is not served.
func (s *Server) checkModel(model string) *apiError {
	if s.known[model] {
		return nil
	}
	e := invalidRequest("Model Not Exist")
	return &e
}

// serveCompletion serves a completion endpoint: parse checks the request
// body, then writeJSON or stream writes the response.
func (s *Server) serveCompletion(w http.ResponseWriter, r *http.Request, f *fault, body []byte,
	parse func(*fault, []byte) (*plan, *apiError),
	writeJSON, stream func(context.Context, *output, *plan),
) {
	p, apiErr := parse(f, body)
	if apiErr == nil {
		apiErr = checkCompletionFaults(f, p.stream, p.spec.tool != nil)
	}
	if apiErr != nil {
		s.reject(w, r, *apiErr)
		return
	}
	if p.stream {
		stream(r.Context(), s.newOutput(w, r, f, true), p)
	} else {
		writeJSON(r.Context(), s.newOutput(w, r, f, false), p)
	}
}

// checkCompletionFaults checks the fault keys against the completion a request
// gets.
// size needs text to pad, so it does not apply to a tool call.
func checkCompletionFaults(f *fault, stream bool, tool bool) *apiError {
	mode := modeJSON
	if stream {
		mode = modeStream
	}
	err := f.checkMode(mode, true)
	if err == nil && tool && f.size > 0 {
		err = errors.New(`key "size" does not apply to a tool call`)
	}
	if err != nil {
		e := faultHeaderError(err)
		return &e
	}
	return nil
}

// reject writes an error response and logs it at debug level. The message
// of a 401 is not logged because it contains the end of the key.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, e apiError) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", e.status, "type", e.typ}
	if e.typ != typeAuthentication {
		attrs = append(attrs, "message", e.message)
	}
	s.log.Debug("request rejected", attrs...)
	writeError(w, e)
}

func faultHeaderError(err error) apiError {
	return invalidRequest(fmt.Sprintf("invalid %s header: %s", FaultHeader, err))
}
