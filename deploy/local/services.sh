#!/usr/bin/env bash
# Real backing services on loopback, for the test suite and for developers who want a
# local cluster stack. Source it and call the functions, or run it:
#
#   deploy/local/services.sh up      # start everything, print the environment to use
#   deploy/local/services.sh down    # stop what `up` started
#
# State lives in $SC_STACK_DIR (default /tmp/secureconnect-stack). Variables are SC_*, not
# SECURECONNECT_*: the server reads every SECURECONNECT_* variable as configuration.
# Services are installed from Debian packages when missing (needs root, as in CI).
set -euo pipefail

STACK_DIR="${SC_STACK_DIR:-/tmp/secureconnect-stack}"
PG_PORT="${SC_PG_PORT:-55432}"
PG_PASSWORD="secureconnect-test"

apt_updated=""
apt_install() { # packages…
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# PostgreSQL: a private cluster (initdb as the postgres user; apt does not start one here),
# password authentication on 127.0.0.1:$PG_PORT.
postgres_up() {
  apt_install postgresql
  local bin data="$STACK_DIR/postgres"
  bin="$(pg_bin)"
  mkdir -p "$STACK_DIR" && chmod 755 "$STACK_DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data" && install -d -o postgres -g postgres -m 700 "$data"
    printf '%s\n' "$PG_PASSWORD" > "$STACK_DIR/pg-password" && chown postgres "$STACK_DIR/pg-password"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A scram-sha-256 \
      --pwfile="$STACK_DIR/pg-password" >/dev/null
  fi
  # Already running (a second `up`): keep it.
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 ||
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c max_connections=300 -c fsync=off" >/dev/null
  export SC_TEST_POSTGRES_URL="postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
}

postgres_down() {
  local bin data="$STACK_DIR/postgres"
  bin="$(pg_bin)"
  [ -n "$bin" ] && [ -f "$data/postmaster.pid" ] &&
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

# Redis: no persistence, loopback only. (The cluster tests also start private Redis
# servers of their own, which they stop and restart to test outages.)
REDIS_PORT="${SC_REDIS_PORT:-56379}"
redis_up() {
  apt_install redis-server
  mkdir -p "$STACK_DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$STACK_DIR/redis" --pidfile "$STACK_DIR/redis/redis.pid" --logfile "$STACK_DIR/redis/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export SC_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

redis_down() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

# SeaweedFS's S3 gateway (Apache-2.0), built from the Go module proxy at a pinned version
# and cached by version (a first build takes ~5 min on 2 cores). Credentials are configured,
# so request signatures are really checked.
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6" # no tagged releases on the proxy
SEAWEEDFS_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/secureconnect/seaweedfs-$SEAWEEDFS_VERSION/weed"
S3_PORT="${SC_S3_PORT:-18333}"
S3_BUCKET="secureconnect-test"
S3_ACCESS_KEY="sc-test-access-key"
S3_SECRET_KEY="sc-test-secret-key"

seaweedfs_build() {
  [ -x "$SEAWEEDFS_BIN" ] && return 0
  command -v go >/dev/null || { echo "go not found: needed to build SeaweedFS" >&2; return 1; }
  local module="github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" src work
  # `go install pkg@version` refuses modules with replace directives, so build the
  # downloaded module as the main module instead.
  # Quiet unless it fails: the build prints a line per module it downloads.
  local log
  log="$(mktemp)"
  echo "building SeaweedFS $SEAWEEDFS_VERSION (once per version; ~5 min on 2 cores)"
  src="$(go mod download -json "$module" 2>>"$log" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  work="$(mktemp -d)"
  cp -r "$src/." "$work" && chmod -R u+w "$work"
  mkdir -p "$(dirname "$SEAWEEDFS_BIN")"
  if ! (cd "$work" && go build -o "$SEAWEEDFS_BIN.tmp" ./weed) >>"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$work" "$log"
    return 1
  fi
  mv "$SEAWEEDFS_BIN.tmp" "$SEAWEEDFS_BIN"
  rm -rf "$work" "$log"
}

seaweedfs_up() {
  apt_install curl
  seaweedfs_build
  local dir="$STACK_DIR/seaweedfs"
  mkdir -p "$dir/data"
  cat > "$dir/s3.json" <<JSON
{"identities":[{"name":"secureconnect-test","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  # Ports from 17000 up: SeaweedFS also listens on each port + 10000 for gRPC. Volumes of
  # 64 MB, up to 100 of them: the drive tests write a few hundred MB (the default of 8
  # volumes ran out, and every PUT then failed with 500).
  nohup "$SEAWEEDFS_BIN" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.port=17333 -volume.port=17080 -filer -filer.port=17888 \
    -s3 -s3.port="$S3_PORT" -s3.config="$dir/s3.json" -master.volumeSizeLimitMB=64 \
    -volume.max=100 \
    >"$dir/weed.log" 2>&1 &
  echo $! > "$dir/weed.pid"
  # Not a job of this shell: stopping it later must not print "Killed".
  disown
  for _ in $(seq 120); do
    curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break
    sleep 0.5
  done
  for _ in $(seq 30); do
    echo "s3.bucket.create -name $S3_BUCKET" | "$SEAWEEDFS_BIN" shell -master=127.0.0.1:17333 2>/dev/null |
      grep -q "created bucket\|already exists" && break
    sleep 1
  done
  export SC_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" SC_TEST_S3_BUCKET="$S3_BUCKET"
  export SC_TEST_S3_ACCESS_KEY_ID="$S3_ACCESS_KEY" SC_TEST_S3_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
}

seaweedfs_down() {
  local pid_file="$STACK_DIR/seaweedfs/weed.pid"
  [ -f "$pid_file" ] || return 0
  local pid
  pid="$(cat "$pid_file")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # `weed server` can sit on SIGTERM for a long while; its data is disposable here.
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pid_file"
}

# Apache Cassandra 5.0 (the CQL protocol ScyllaDB speaks too): cassandra-all and its
# dependencies from Maven Central (cached by version), run on JDK 17 with the
# --add-exports/--add-opens flags of Cassandra's jvm17-server.options, a small heap and a
# minimal single-node cassandra.yaml. Starts in seconds; CQL on 127.0.0.1:$CQL_PORT.
CASSANDRA_VERSION="5.0.6"
CASSANDRA_LIB="${XDG_CACHE_HOME:-$HOME/.cache}/secureconnect/cassandra-$CASSANDRA_VERSION/lib"
CQL_PORT="${SC_CQL_PORT:-19042}"

cassandra_fetch() {
  apt_install openjdk-17-jre-headless maven
  [ -f "$CASSANDRA_LIB/.complete" ] && return 0
  local pom
  pom="$(mktemp -d)"
  cat > "$pom/pom.xml" <<XML
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local.secureconnect</groupId><artifactId>cassandra-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency><groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
    <version>$CASSANDRA_VERSION</version></dependency></dependencies></project>
XML
  mvn -q -B -f "$pom/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CASSANDRA_LIB"
  touch "$CASSANDRA_LIB/.complete"
  rm -rf "$pom"
}

cassandra_up() {
  cassandra_fetch
  local dir="$STACK_DIR/cassandra"
  mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc}
  cat > "$dir/cassandra.yaml" <<YAML
cluster_name: secureconnect-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:17700"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: 17700
native_transport_port: $CQL_PORT
endpoint_snitch: SimpleSnitch
YAML
  local opens=(
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
  )
  # Cassandra 5.0 runs on 11 or 17: take Debian's 17 even when another JDK is the default.
  local java
  java="$(ls -d /usr/lib/jvm/java-17-openjdk-*/bin/java 2>/dev/null | head -n 1)"
  nohup "${java:-java}" -Xms512m -Xmx1g -XX:+UseG1GC -Djdk.attach.allowAttachSelf=true "${opens[@]}" \
    -Dcassandra.config="file://$dir/cassandra.yaml" -Dcassandra.storagedir="$dir" \
    -Dcassandra-foreground=yes -Dcassandra.jmx.local.port=17799 \
    -cp "$CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon >"$dir/cassandra.log" 2>&1 &
  echo $! > "$dir/cassandra.pid"
  disown
  for _ in $(seq 180); do
    grep -q "Starting listening for CQL clients" "$dir/cassandra.log" && break
    sleep 1
  done
  grep -q "Starting listening for CQL clients" "$dir/cassandra.log" || {
    echo "Cassandra did not start; see $dir/cassandra.log" >&2
    return 1
  }
  export SC_TEST_CQL_CONTACT_POINT="127.0.0.1:$CQL_PORT"
  # The fault test pauses this process (SIGSTOP/SIGCONT) to play a Cassandra outage.
  SC_TEST_CQL_PID="$(cat "$dir/cassandra.pid")"
  export SC_TEST_CQL_PID
}

cassandra_down() {
  local pid_file="$STACK_DIR/cassandra/cassandra.pid"
  [ -f "$pid_file" ] || return 0
  kill "$(cat "$pid_file")" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$(cat "$pid_file")" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  rm -f "$pid_file"
}

services_up() {
  postgres_up
  redis_up
  seaweedfs_up
  cassandra_up
  echo "export SC_TEST_POSTGRES_URL=$SC_TEST_POSTGRES_URL"
  echo "export SC_TEST_REDIS_URL=$SC_TEST_REDIS_URL"
  echo "export SC_TEST_S3_ENDPOINT=$SC_TEST_S3_ENDPOINT SC_TEST_S3_BUCKET=$SC_TEST_S3_BUCKET"
  echo "export SC_TEST_S3_ACCESS_KEY_ID=$SC_TEST_S3_ACCESS_KEY_ID SC_TEST_S3_SECRET_ACCESS_KEY=$SC_TEST_S3_SECRET_ACCESS_KEY"
  echo "export SC_TEST_CQL_CONTACT_POINT=$SC_TEST_CQL_CONTACT_POINT"
}

services_down() {
  cassandra_down
  seaweedfs_down
  redis_down
  postgres_down
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) services_up ;;
    down) services_down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
  esac
fi
