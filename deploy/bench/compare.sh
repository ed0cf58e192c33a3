#!/usr/bin/env bash
# SecureConnect (embedded default) against Centrifugo v6.9.1, side by side on this
# machine: unary writes, fan-out at 1, 100 and 1,000 subscribers, and idle streams. Each
# run starts a fresh server pinned to one core, with the benchmark client on another, and
# reads the server's CPU and memory from /proc. Prints every result line, then the ratios
# issue 12 set as goals. A benchmark, not a test: it is not part of deploy/local/test.sh.
#
#   deploy/bench/compare.sh            # everything (7-15 minutes once built, with this VM's speed)
#   deploy/bench/compare.sh fanout     # one scenario: unary, fanout or idle
#
# Settings (environment): SERVER_CPU (0), CLIENT_CPU (1), DURATION (seconds per
# measurement, 20), RATE (messages/s in fan-out, 50), SUBSCRIBERS ("0 1 100 1000"; 0
# measures publishing alone: at 1 subscriber the publish is most of the cost, and from
# 100 up the ratios of delivery beyond publishing are printed too),
# STREAMS (10000), REPEAT (runs of each measurement, interleaved; the ratios use each
# one's median: on a noisy VM one run can move a ratio by a fifth, 1), OUT (where logs and
# results go).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/secureconnect/target}
CACHE=${SECURECONNECT_CACHE:-$HOME/.cache/secureconnect}
CENTRIFUGO_VERSION=v6.9.1
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=${DURATION:-20}
RATE=${RATE:-50}
SUBSCRIBERS=${SUBSCRIBERS:-"0 1 100 1000"}
STREAMS=${STREAMS:-10000}
REPEAT=${REPEAT:-1}
OUT=${OUT:-/tmp/secureconnect-bench}
SCENARIOS=${1:-"unary fanout idle"}
SC_PORT=50571
BENCH="$CARGO_TARGET_DIR/release/secureconnect-bench"
SERVER="$CARGO_TARGET_DIR/release/secureconnect"
CENTRIFUGO="$CACHE/centrifugo-$CENTRIFUGO_VERSION/centrifugo"

mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"
# 10,000 streams are 10,000 sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building release binaries…" >&2
(cd "$ROOT" && cargo build --release --quiet -p secureconnect-server --bin secureconnect \
    -p secureconnect-sdk --bin secureconnect-bench)
if [[ ! -x $CENTRIFUGO ]]; then
    echo "installing centrifugo $CENTRIFUGO_VERSION (go install)…" >&2
    GOBIN=$(dirname "$CENTRIFUGO") go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
fi

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_secureconnect() {
    stop_server
    rm -rf "$OUT/secureconnect-data"
    # Sends per user are limited to 10/s by default; a benchmark publisher sends more.
    SECURECONNECT_LIMITS__MESSAGES_PER_SECOND=1000000 taskset -c "$SERVER_CPU" "$SERVER" serve \
        --listen "127.0.0.1:$SC_PORT" --data-dir "$OUT/secureconnect-data" \
        >"$OUT/secureconnect.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$SC_PORT"
}

# $1: "history" (history and recovery on, the comparable feature) or "plain".
start_centrifugo() {
    stop_server
    local channel='{}'
    if [[ $1 == history ]]; then
        channel='{"history_size": 100, "history_ttl": "300s", "force_recovery": true}'
    fi
    cat >"$OUT/centrifugo-$1.json" <<JSON
{
  "client": { "token": { "hmac_secret_key": "bench-token-secret" } },
  "http_server": { "address": "127.0.0.1", "port": 18000 },
  "grpc_api": { "enabled": true, "address": "127.0.0.1", "port": 10000, "key": "bench-api-key" },
  "uni_grpc": { "enabled": true, "address": "127.0.0.1", "port": 11000 },
  "channel": { "without_namespace": $channel }
}
JSON
    taskset -c "$SERVER_CPU" "$CENTRIFUGO" -c "$OUT/centrifugo-$1.json" \
        >"$OUT/centrifugo-$1.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port 11000
    wait_for_port 10000
}

# $1: label for the results; the rest: the benchmark's arguments after the target's.
bench_secureconnect() {
    local label=$1
    shift
    taskset -c "$CLIENT_CPU" "$BENCH" --endpoint "http://127.0.0.1:$SC_PORT" \
        --server-pid "$SERVER_PID" "$@" | sed "s/^result /result label=$label /" | tee -a "$RESULTS"
}

bench_centrifugo() {
    local label=$1
    shift
    taskset -c "$CLIENT_CPU" "$BENCH" --target centrifugo --endpoint http://127.0.0.1:11000 \
        --centrifugo-api http://127.0.0.1:10000 --server-pid "$SERVER_PID" "$@" |
        sed "s/^result /result label=$label /" | tee -a "$RESULTS"
}

for scenario in $SCENARIOS; do
    case $scenario in
    unary)
        for _ in $(seq "$REPEAT"); do
            start_secureconnect
            bench_secureconnect sc unary --duration "$DURATION"
        done
        ;;
    fanout)
        for n in $SUBSCRIBERS; do
            args=(fanout --subscribers "$n" --rate "$RATE" --duration "$DURATION")
            for _ in $(seq "$REPEAT"); do
                start_secureconnect
                bench_secureconnect sc "${args[@]}"
                start_centrifugo history
                bench_centrifugo cf-history "${args[@]}"
                start_centrifugo plain
                bench_centrifugo cf-plain "${args[@]}"
            done
        done
        ;;
    idle)
        for _ in $(seq "$REPEAT"); do
            start_secureconnect
            bench_secureconnect sc idle --streams "$STREAMS"
            start_centrifugo plain
            bench_centrifugo cf-plain idle --streams "$STREAMS"
        done
        ;;
    *)
        echo "unknown scenario $scenario (unary, fanout, idle)" >&2
        exit 2
        ;;
    esac
done
stop_server

echo
echo "== ratios (goal in brackets) =="
awk -v subscribers="$SUBSCRIBERS" '
    /^result / {
        delete f
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        key = f["label"] "/" f["scenario"] "/" f["subscribers"]
        c = ++runs[key]
        for (k in f) { seen[key, k, c] = f[k]; fields[key, k] = 1 }
    }
    function verdict(ok) { return ok ? "met" : "NOT MET" }
    # The median of the runs of one field (the lower one of an even count: a measured value).
    function median(key, k,    a, m, i, j, x) {
        m = 0
        for (i = 1; i <= runs[key]; i++) if ((key, k, i) in seen) a[++m] = seen[key, k, i]
        for (i = 2; i <= m; i++) {
            x = a[i]
            for (j = i - 1; j > 0 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]
            a[j + 1] = x
        }
        return a[int((m + 1) / 2)]
    }
    function delivery_only(label, s) {
        return (r[label "/fanout/" s, "cpu_ms_per_1000"] * s - r[label "/fanout/0", "cpu_ms_per_1000_published"]) / s
    }
    END {
        for (idx in fields) {
            split(idx, part, SUBSEP)
            r[part[1], part[2]] = median(part[1], part[2])
        }
        if (("sc/unary/", "send_per_health") in r) {
            v = r["sc/unary/", "send_per_health"]
            printf "unary  SendMessage ÷ Health/Check requests/s   %6.3f  [≥ 0.25]   %s\n", v, verdict(v >= 0.25)
            v = r["sc/unary/", "send_cpu_us"]
            printf "unary  server CPU per SendMessage (µs)         %6.0f  [≤ 250]    %s\n", v, verdict(v <= 250)
            v = r["sc/unary/", "list_cpu_us"]
            printf "unary  server CPU per ListMessages 50 (µs)     %6.0f  [≤ 150]    %s\n", v, verdict(v <= 150)
        }
        n = split(subscribers, subs, " ")
        for (i = 1; i <= n; i++) {
            s = subs[i]
            if (s == 0) {
                sc = r["sc/fanout/0", "cpu_ms_per_1000_published"]
                if (sc == "") continue
                printf "fanout    0 subs  publishing alone, CPU per 1000 publishes: SecureConnect %s ms (a persisted send), Centrifugo+history %s ms, plain %s ms\n", sc, r["cf-history/fanout/0", "cpu_ms_per_1000_published"], r["cf-plain/fanout/0", "cpu_ms_per_1000_published"]
                continue
            }
            sc = r["sc/fanout/" s, "cpu_ms_per_1000"]
            if (sc == "") continue
            h = r["cf-history/fanout/" s, "cpu_ms_per_1000"]
            p = r["cf-plain/fanout/" s, "cpu_ms_per_1000"]
            printf "fanout %4d subs  CPU/delivery ÷ Centrifugo+history  %5.2f  [≤ 1.0]  %s   (%s vs %s ms per 1000)\n", s, sc / h, verdict(sc / h <= 1.0), sc, h
            printf "fanout %4d subs  CPU/delivery ÷ Centrifugo plain    %5.2f  [≤ 1.5]  %s   (%s vs %s ms per 1000)\n", s, sc / p, verdict(sc / p <= 1.5), sc, p
            printf "fanout %4d subs  p99 send→deliver: SecureConnect %s ms, Centrifugo+history %s ms, plain %s ms\n", s, r["sc/fanout/" s, "p99_ms"], r["cf-history/fanout/" s, "p99_ms"], r["cf-plain/fanout/" s, "p99_ms"]
            # What delivering costs beyond publishing: the CPU per message at s subscribers
            # less the CPU per publish at 0, per 1,000 deliveries. Only from 100 up: below
            # that it is the difference of two noisy numbers of the same size.
            if (s >= 100 && ("sc/fanout/0", "cpu_ms_per_1000_published") in r) {
                dsc = delivery_only("sc", s); dh = delivery_only("cf-history", s); dp = delivery_only("cf-plain", s)
                printf "fanout %4d subs  delivery beyond publishing ÷ Centrifugo+history %5.2f, ÷ plain %5.2f   (%.1f vs %.1f / %.1f ms per 1000)\n", s, dsc / dh, dsc / dp, dsc, dh, dp
            }
        }
        big = r["sc/fanout/1000", "p99_ms"]; one = r["sc/fanout/1", "p99_ms"]
        if (big != "" && one != "") {
            printf "fanout 1000 subs  p99 (ms)                          %6.1f  [< 100]  %s\n", big, verdict(big < 100)
            printf "fanout p99(1000 subs) ÷ p99(1 sub)                   %5.2f  [≤ 3]    %s\n", big / one, verdict(big / one <= 3)
        }
        sc = r["sc/idle/", "bytes_per_stream"]; cf = r["cf-plain/idle/", "bytes_per_stream"]
        if (sc != "" && cf != "") {
            printf "idle   memory per stream ÷ Centrifugo           %5.2f  [≤ 0.5]  %s   (%d vs %d bytes)\n", sc / cf, verdict(sc / cf <= 0.5), sc, cf
        }
    }' "$RESULTS"
