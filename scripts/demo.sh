#!/usr/bin/env bash
# Offline demo: starts the DeepSeek stand-in and deepmeter in front of it on
# loopback ports, sends a plain and a streamed chat completion through the
# proxy, then prints what the admin API reports. Everything stops on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

STANDIN_ADDR=${STANDIN_ADDR:-127.0.0.1:18090}
PROXY_ADDR=${PROXY_ADDR:-127.0.0.1:18080}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:18081}
workdir=$(mktemp -d)
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$workdir"
}
trap cleanup EXIT

wait_for() {
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: $1 did not come up; logs are in $workdir" >&2
	cat "$workdir"/*.log >&2
	return 1
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bin/deepseek-standin --listen "$STANDIN_ADDR" >"$workdir/standin.log" 2>&1 &
pids+=($!)
bin/deepmeter serve \
	--listen "$PROXY_ADDR" --admin-listen "$ADMIN_ADDR" \
	--upstream "http://$STANDIN_ADDR" \
	--database-url "sqlite:$workdir/demo.db" \
	--admin-token "$token" >"$workdir/deepmeter.log" 2>&1 &
pids+=($!)
wait_for "http://$STANDIN_ADDR/models" || true
wait_for "http://$ADMIN_ADDR/readyz"

step "A chat completion through the proxy (note the X-DeepMeter-Request-Id header)"
curl -sS -i "http://$PROXY_ADDR/chat/completions" \
	-H 'Authorization: Bearer sk-demo0000000000000000000000001234' \
	-H 'Content-Type: application/json' \
	-H 'X-DeepMeter-User-Id: user-42' \
	-H 'X-DeepMeter-Page-Tab: recommendations' \
	-d '{"model":"deepseek-chat","messages":[{"role":"user","content":"Suggest three books about distributed systems."}]}'
echo

step "The same call, streamed"
curl -sS -N "http://$PROXY_ADDR/chat/completions" \
	-H 'Authorization: Bearer sk-demo0000000000000000000000001234' \
	-H 'Content-Type: application/json' \
	-H 'X-DeepMeter-User-Id: user-42' \
	-H 'X-DeepMeter-Page-Tab: chat' \
	-d '{"model":"deepseek-reasoner","stream":true,"messages":[{"role":"user","content":"Why is the sky blue?"}]}'

# Records reach the database through a background writer; give it a moment.
sleep 1

step "GET /api/admin/api-usage/stats?days=1"
curl -sS "http://$ADMIN_ADDR/api/admin/api-usage/stats?days=1" -H "Authorization: Bearer $token"
echo
step "GET /api/admin/api-usage/records?limit=5"
curl -sS "http://$ADMIN_ADDR/api/admin/api-usage/records?limit=5" -H "Authorization: Bearer $token"
echo
step "The admin API without the token"
curl -sS -i "http://$ADMIN_ADDR/api/admin/api-usage/stats"
echo
