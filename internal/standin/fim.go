package standin

import (
	"context"
	"encoding/json"
)

type fimRequest struct {
	Model         *string        `json:"model"`
	Prompt        *string        `json:"prompt"`
	Suffix        *string        `json:"suffix"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	MaxTokens     *int           `json:"max_tokens"`
}

// fimCompletion is a fill-in-the-middle response or stream chunk. Usage is
// left out when nil and sent as null when set to jsonNull.
type fimCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []fimChoice     `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type fimChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null
	FinishReason *string         `json:"finish_reason"`
}

func (s *Server) parseFIM(f *fault, body []byte) (*plan, *apiError) {
	var req fimRequest
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	switch {
	case req.Model == nil:
		return nil, missingField(body, "model")
	case req.Prompt == nil:
		return nil, missingField(body, "prompt")
	}
	if e := s.checkModel(*req.Model); e != nil {
		return nil, e
	}
	if e := checkMaxTokens(req.MaxTokens); e != nil {
		return nil, e
	}

	text := *req.Prompt
	if req.Suffix != nil {
		text += *req.Suffix
	}
	p := &plan{
		id:           requestID(body),
		model:        s.servedModel(*req.Model),
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		promptTokens: PromptTokens(text),
		spec:         completionSpec{seed: text, words: wordsFor(f, text), unlimited: f.size > 0},

		usageMismatch: f.usageMismatch,
	}
	if req.MaxTokens != nil {
		p.spec.maxTokens = *req.MaxTokens
	}
	return p, nil
}

func (s *Server) writeFIMJSON(ctx context.Context, o *output, p *plan) {
	measured := p.spec.buildForJSON(ctx, o.f.size)
	measured.drain()
	reason := measured.finishReason()

	resp := fimCompletion{
		ID:                p.id,
		Object:            "text_completion",
		Created:           s.created,
		Model:             p.model,
		Choices:           []fimChoice{{Text: contentPlaceholder, FinishReason: &reason}},
		Usage:             marshal(p.chatUsage(measured)),
		SystemFingerprint: systemFingerprint,
	}
	s.writeCompletionJSON(ctx, o, marshal(resp), p.spec.buildForJSON(ctx, o.f.size))
}

func (s *Server) streamFIM(ctx context.Context, o *output, p *plan) {
	if !s.startOK(ctx, o) {
		return
	}

	a := p.spec.build(s.streamStop(o))
	chunk := fimCompletion{ID: p.id, Object: "text_completion", Created: s.created, Model: p.model, SystemFingerprint: systemFingerprint}
	emit := func(pc *piece, final bool) bool {
		choice := fimChoice{}
		if pc != nil {
			choice.Text = pc.text
		}
		chunk.Usage = nil
		if p.includeUsage {
			chunk.Usage = jsonNull
		}
		if final {
			reason := a.finishReason()
			choice.FinishReason = &reason
			chunk.Usage = marshal(p.chatUsage(a))
		}
		chunk.Choices = []fimChoice{choice}
		return s.sendEvent(ctx, o, "", marshal(chunk))
	}
	if !s.streamPieces(o, a, emit) {
		return
	}
	s.endStream(ctx, o, o.done)
}
