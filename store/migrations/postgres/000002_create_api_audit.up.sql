-- api_audit holds one row per change made through the admin API, written
-- in the same transaction as the change. old_value and new_value are JSON
-- text; old_value is 'null' when nothing was set before.
CREATE TABLE api_audit (
    id         BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    token_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    old_value  TEXT NOT NULL,
    new_value  TEXT NOT NULL
);

CREATE INDEX api_audit_created_at_idx ON api_audit (created_at, id);

-- api_daily_limit holds at most one row: the daily limit an admin last set
-- through the API, which replaces the configured one. 0 means no limit.
CREATE TABLE api_daily_limit (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    daily_limit BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
