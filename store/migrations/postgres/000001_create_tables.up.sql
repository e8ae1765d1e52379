-- api_usage holds one row per metered call. Money columns (cost, price_*)
-- are BIGINT units of 10^-12 of the row's currency; cost and
-- price_effective_from are NULL when no price entry matched the model.
CREATE TABLE api_usage (
    id                       TEXT PRIMARY KEY,
    created_at               TIMESTAMPTZ NOT NULL,
    endpoint                 TEXT NOT NULL DEFAULT '',
    upstream_path            TEXT NOT NULL DEFAULT '',
    requested_model          TEXT NOT NULL DEFAULT '',
    model                    TEXT NOT NULL DEFAULT '',
    stream                   BOOLEAN NOT NULL DEFAULT FALSE,
    status_code              INTEGER NOT NULL DEFAULT 0,
    prompt_tokens            BIGINT NOT NULL DEFAULT 0,
    completion_tokens        BIGINT NOT NULL DEFAULT 0,
    total_tokens             BIGINT NOT NULL DEFAULT 0,
    prompt_cache_hit_tokens  BIGINT NOT NULL DEFAULT 0,
    prompt_cache_miss_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens         BIGINT NOT NULL DEFAULT 0,
    usage_source             TEXT NOT NULL DEFAULT '',
    ttfb_ms                  BIGINT NOT NULL DEFAULT 0,
    processing_time_ms       BIGINT NOT NULL DEFAULT 0,
    cost                     BIGINT,
    currency                 TEXT NOT NULL DEFAULT '',
    price_model              TEXT NOT NULL DEFAULT '',
    price_effective_from     TIMESTAMPTZ,
    price_hit                BIGINT NOT NULL DEFAULT 0,
    price_miss               BIGINT NOT NULL DEFAULT 0,
    price_output             BIGINT NOT NULL DEFAULT 0,
    success                  BOOLEAN NOT NULL DEFAULT FALSE,
    error_message            TEXT NOT NULL DEFAULT '',
    flags                    TEXT NOT NULL DEFAULT '',
    message                  TEXT NOT NULL DEFAULT '',
    request_data             TEXT NOT NULL DEFAULT '',
    response_data            TEXT NOT NULL DEFAULT '',
    user_id                  TEXT NOT NULL DEFAULT '',
    page_tab                 TEXT NOT NULL DEFAULT ''
);

-- (created_at, id) serves time ranges and the newest-first list order.
CREATE INDEX api_usage_created_at_idx ON api_usage (created_at, id);
CREATE INDEX api_usage_user_id_created_at_idx ON api_usage (user_id, created_at);
CREATE INDEX api_usage_page_tab_created_at_idx ON api_usage (page_tab, created_at);
CREATE INDEX api_usage_model_created_at_idx ON api_usage (model, created_at);

-- api_balance holds at most one row: the balance an admin last set.
CREATE TABLE api_balance (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    balance    BIGINT NOT NULL,
    currency   TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
