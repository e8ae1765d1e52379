DROP TABLE IF EXISTS api_daily_limit;
DROP TABLE IF EXISTS api_audit;
