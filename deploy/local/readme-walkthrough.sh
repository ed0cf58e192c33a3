#!/usr/bin/env bash
# Runs the README's grpcurl walkthrough exactly as written, against a fresh server on the
# embedded default, the way a newcomer pastes it into a terminal; fails when a line of it
# stops working. Usage: deploy/local/readme-walkthrough.sh <server binary>
# (deploy/local/test.sh passes the debug build; grpcurl and jq must be on PATH.)
set -euo pipefail
cd "$(dirname "$0")/../.."

server_bin="$(realpath "$1")"
readme="$PWD/README.md"
work="$(mktemp -d /tmp/secureconnect-walkthrough.XXXXXX)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The block under "## Try it with grpcurl", up to its closing fence.
awk '/^## Try it with grpcurl/{f=1} f&&/^```sh/{g=1;next} g&&/^```/{exit} g' "$readme" \
  > "$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || { echo "README: no grpcurl walkthrough found" >&2; exit 1; }

# A fresh server with the defaults (listens on 127.0.0.1:50051, data in ./data).
(cd "$work" && exec "$server_bin" serve) > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grpcurl -plaintext 127.0.0.1:50051 list >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done

# Not `set -e`: the walkthrough's last call shows an error on purpose, as a terminal would.
(cd "$work" && bash walkthrough.sh) > "$work/out.txt" 2>&1 || true

fail() {
  printf 'README walkthrough: %s\n--- its output ---\n' "$1" >&2
  cat "$work/out.txt" >&2
  exit 1
}
grep -q 'secureconnect.message.v1.MessageService' "$work/out.txt" || fail "reflection lists no services"
# Once in SendMessage's answer, once on Bob's live stream.
[ "$(grep -c '"text": "hello bob"' "$work/out.txt")" -ge 2 ] || fail "the message did not reach Bob's stream"
grep -q 'Code: InvalidArgument' "$work/out.txt" || fail "the bad request was not INVALID_ARGUMENT"
grep -q '"field": "conversation_id"' "$work/out.txt" || fail "the error's BadRequest details were not shown"
if grep -qiE 'command not found|unbound variable|parse error|not recognized' "$work/out.txt"; then
  fail "a line does not run as written"
fi
echo "README walkthrough: every step ran as written"
