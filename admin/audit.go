package admin

import (
	"encoding/json"
	"net/http"

	"github.com/deepmeter/deepmeter/store"
)

// auditView is one audit entry in responses. OldValue and NewValue are
// the stored JSON, embedded as JSON.
type auditView struct {
	ID        int64           `json:"id"`
	CreatedAt string          `json:"created_at"`
	TokenName string          `json:"token_name"`
	Action    string          `json:"action"`
	OldValue  json.RawMessage `json:"old_value"`
	NewValue  json.RawMessage `json:"new_value"`
}

// auditPage is the data of GET /api/admin/audit.
type auditPage struct {
	Entries    []auditView `json:"entries"`
	Total      int64       `json:"total"`
	Page       int         `json:"page"`
	Limit      int         `json:"limit"`
	TotalPages int64       `json:"total_pages"`
}

// listAudit serves GET /api/admin/audit?page=P&limit=L, newest first.
func (s *server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := pageParam.parse(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := limitParam.parse(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}

	ctx, cancel := queryContext(r)
	defer cancel()
	entries, total, err := s.store.Audit(ctx, store.AuditQuery{Offset: (page - 1) * limit, Limit: limit})
	if err != nil {
		s.storeFailed(w, r, "list audit", err)
		return
	}
	out := auditPage{Entries: make([]auditView, 0, len(entries)), Total: total, Page: page, Limit: limit,
		TotalPages: (total + int64(limit) - 1) / int64(limit)}
	for _, e := range entries {
		out.Entries = append(out.Entries, auditView{
			ID:        e.ID,
			CreatedAt: timeString(e.CreatedAt),
			TokenName: e.TokenName,
			Action:    e.Action,
			OldValue:  jsonOrString(e.OldValue),
			NewValue:  jsonOrString(e.NewValue),
		})
	}
	s.writeData(w, out)
}

// jsonOrString returns stored JSON as it is, or as a JSON string when it
// is not valid JSON, so one bad row cannot break the response.
func jsonOrString(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	data, _ := json.Marshal(s)
	return data
}
