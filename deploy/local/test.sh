#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts the real services the
# tests need (deploy/local/services.sh), then runs formatting, lint (Rust and protobuf) and
# every test — the integration suite twice: on the embedded default (SQLite) and on
# PostgreSQL. Services are stopped on exit. Usage: deploy/local/test.sh
#
# Build output is cached outside the clone (CARGO_TARGET_DIR) so repeated runs are fast;
# nothing in the cache is required.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUF_VERSION=1.75.0 # @bufbuild/buf from npm: the buf CLI, no separate download
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/secureconnect/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }
command -v npx >/dev/null || { echo "npx not found: install Node.js 20+" >&2; exit 1; }
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo --version
# A real SMTP server for the mail tests (Python's aiosmtpd, from PyPI).
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"

step "cargo fmt --check"
cargo fmt --all -- --check

step "buf lint"
npx --yes "@bufbuild/buf@$BUF_VERSION" lint

step "buf breaking (against the published API)"
# proto/breaking-baseline.binpb is the API as published (first at 9668719; refreshed with
# the presence service), kept as a buf image so the check needs no git history. Refresh it
# when a change that grew the API lands:
#   buf build --exclude-source-info -o proto/breaking-baseline.binpb
npx --yes "@bufbuild/buf@$BUF_VERSION" breaking --against proto/breaking-baseline.binpb

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "services"
# A fresh state directory per run, removed on exit with everything in it.
export SC_STACK_DIR="$(mktemp -d /tmp/secureconnect-test.XXXXXX)"
source deploy/local/services.sh
trap 'services_down; rm -rf "$SC_STACK_DIR"' EXIT
postgres_up
redis_up
seaweedfs_up
cassandra_up
echo "PostgreSQL on $SC_TEST_POSTGRES_URL, Redis on $SC_TEST_REDIS_URL, S3 (SeaweedFS) on $SC_TEST_S3_ENDPOINT, Cassandra (CQL) on $SC_TEST_CQL_CONTACT_POINT"

step "cargo test (embedded default: SQLite, in-process bus, local files)"
SC_TEST_POSTGRES_URL= SC_TEST_REDIS_URL= SC_TEST_CQL_CONTACT_POINT= cargo test --workspace --locked

step "cargo test (server integration suite on PostgreSQL + Cassandra + Redis + S3, with cluster and fault tests)"
cargo test -p secureconnect-server --tests --locked -- --include-ignored
