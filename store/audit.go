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
	// AuditSetDailyLimit: POST /api/admin/api-usage/daily-limit replaced
	// the daily limit.
	AuditSetDailyLimit = "set_daily_limit"
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

// setting is an amount an admin sets through the API: the balance or the
// daily limit. Both are one row of a table with the columns key,
// currency and updated_at.
type setting struct {
	table  string // api_balance or api_daily_limit
	key    string // the amount column, also the amount's key in audit values
	action string // the Audit* action of a change
}

var (
	balanceSetting    = setting{table: "api_balance", key: "balance", action: AuditSetBalance}
	dailyLimitSetting = setting{table: "api_daily_limit", key: "daily_limit", action: AuditSetDailyLimit}
)

// auditJSON returns b as the JSON of an audit value, with the amount as
// an exact JSON number under key, or "null" for a value never set.
func auditJSON(key string, b Balance) string {
	if b.UpdatedAt.IsZero() {
		return "null"
	}
	amount, err := json.Marshal(json.Number(b.Amount.String()))
	if err != nil {
		// Only a malformed json.Number fails, and Money.String never
		// returns one.
		panic(fmt.Sprintf("store: encode %s for the audit: %v", key, err))
	}
	rest, _ := json.Marshal(struct {
		Currency  string `json:"currency"`
		UpdatedAt string `json:"updated_at"`
	}{b.Currency, b.UpdatedAt.UTC().Format(time.RFC3339Nano)})
	return `{"` + key + `":` + string(amount) + `,` + string(rest[1:])
}
