package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// Audit actions: what a change did.
const (
	// AuditSetBalance: POST /api/admin/api-usage/balance replaced the balance.
	AuditSetBalance = "set_balance"
)

// AuditEntry is one change made through the admin API, stored in api_audit
// in the same transaction as the change itself.
type AuditEntry struct {
	ID        int64     // id: increasing in insertion order
	CreatedAt time.Time // created_at: when the change was made, UTC
	TokenName string    // token_name: the name of the admin token used, never the token
	Action    string    // action: an Audit* constant
	OldValue  string    // old_value: JSON, "null" when nothing was set before
	NewValue  string    // new_value: JSON
}

// AuditQuery selects a page of audit entries, newest first.
type AuditQuery struct {
	Offset int
	Limit  int
}

// checkAuditQuery rejects a negative offset or limit.
func checkAuditQuery(q AuditQuery) error {
	if q.Offset < 0 || q.Limit < 0 {
		return fmt.Errorf("list audit entries: invalid offset %d or limit %d: both must be 0 or more", q.Offset, q.Limit)
	}
	return nil
}

// balanceJSON returns b as the JSON of an audit value, with the amount as
// an exact JSON number, or "null" for a balance never set.
func balanceJSON(b Balance) string {
	if b.UpdatedAt.IsZero() {
		return "null"
	}
	v := struct {
		Balance   json.Number `json:"balance"`
		Currency  string      `json:"currency"`
		UpdatedAt string      `json:"updated_at"`
	}{json.Number(b.Amount.String()), b.Currency, b.UpdatedAt.UTC().Format(time.RFC3339Nano)}
	data, err := json.Marshal(v)
	if err != nil {
		// Only a malformed json.Number fails, and Money.String never
		// returns one.
		panic(fmt.Sprintf("store: encode balance for the audit: %v", err))
	}
	return string(data)
}
