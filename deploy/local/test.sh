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

step "prerequisites"
# Everything the run needs that it cannot install itself, checked before any work starts
# (Debian packages — PostgreSQL, Redis, JDK 17, Maven, curl — are installed as needed).
missing=()
need() { # command, what provides it
  command -v "$1" >/dev/null 2>&1 || missing+=("$1: $2")
}
need cargo "Rust, from https://rustup.rs"
need rustup "Rust, from https://rustup.rs"
need cc "a C compiler (Debian: apt-get install build-essential)"
need python3 "Python 3.9+ (Debian: apt-get install python3 python3-pip)"
need npx "Node.js 20+ with npm"
need go "Go 1.22+, to build SeaweedFS's S3 gateway (https://go.dev/dl)"
need apt-get "a Debian or Ubuntu system (PostgreSQL, Redis and JDK 17 come from apt)"
[ "$(id -u)" -eq 0 ] || missing+=("root: installs Debian packages and runs PostgreSQL as its own user (run with sudo)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'Missing prerequisites:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# The build cache grows with every change (incremental state above all): when the disk
# runs low, that state goes first — the next build is slower, never wrong.
mkdir -p "$CARGO_TARGET_DIR"
free_gib=$(( $(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }') / 1024 / 1024 ))
if [ "$free_gib" -lt 15 ]; then
  printf 'Only %s GiB free: removing the incremental build state in %s\n' "$free_gib" "$CARGO_TARGET_DIR"
  rm -rf "$CARGO_TARGET_DIR"/*/incremental
fi

step "toolchain"
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo --version
# A real SMTP server for the mail tests (Python's aiosmtpd, from PyPI).
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "aiosmtpd==1.4.6"

step "cargo fmt --check"
cargo fmt --all -- --check

step "buf lint"
npx --yes "@bufbuild/buf@$BUF_VERSION" lint

step "buf breaking (against the published API)"
# proto/breaking-baseline.binpb is the API as published (first at 9668719; refreshed with
# the presence service, then with the finished drive), kept as a buf image so the check
# needs no git history. Refresh it when a change that grew the API lands:
#   buf build --exclude-source-info -o proto/breaking-baseline.binpb
npx --yes "@bufbuild/buf@$BUF_VERSION" breaking --against proto/breaking-baseline.binpb

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust SDK: documented and publishable"
RUSTDOCFLAGS="-D warnings" cargo doc -p secureconnect-sdk --no-deps --locked --quiet
# Packs the SDK with the contract crate it needs and builds both from the packed sources.
# The SDK is verified against the packed contract crate, which Cargo treats as a registry
# crate: it keeps its unpacked sources by name and version (registry/src/-<hash>/) and
# never re-checks them or what it built from them, so a contract changed since the last
# run would build stale. Both go first: the unpacked copy, and the contract builds of a
# target dir kept for this check (the rest of it stays warm).
package_target="$CARGO_TARGET_DIR/package-check"
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/secureconnect-proto-* \
  "$package_target"/debug/.fingerprint/secureconnect-proto-*
cargo package -p secureconnect-proto -p secureconnect-sdk --locked --allow-dirty --quiet \
  --target-dir "$package_target"

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

step "README walkthrough (grpcurl, as a newcomer runs it)"
# grpcurl from the Go module proxy (quietly, once per version) and jq from apt.
GRPCURL_VERSION=v1.9.3
grpcurl_dir="${XDG_CACHE_HOME:-$HOME/.cache}/secureconnect/tools/grpcurl-$GRPCURL_VERSION"
if [ ! -x "$grpcurl_dir/grpcurl" ]; then
  GOBIN="$grpcurl_dir" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" 2>/dev/null ||
    GOBIN="$grpcurl_dir" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
fi
apt_install jq
PATH="$grpcurl_dir:$PATH" deploy/local/readme-walkthrough.sh "$CARGO_TARGET_DIR/debug/secureconnect"

step "TypeScript SDK and web demo (generated code current, strict build, Node and Chromium suites against the server)"
# Dependencies exactly as locked; protoc-gen-es and buf come from them, no download.
(cd sdk-ts && npm ci --no-audit --no-fund --loglevel=error)
(cd sdk-ts && npm run --silent generate)
# Compared with what git holds (committed or staged): changed and new files both count.
if ! git diff --quiet -- sdk-ts/src/gen || [ -n "$(git ls-files --others --exclude-standard -- sdk-ts/src/gen)" ]; then
  git status --short -- sdk-ts/src/gen >&2
  echo "sdk-ts/src/gen differs from what the contract generates: run 'npm run generate' in sdk-ts and commit" >&2
  exit 1
fi
(cd sdk-ts && npm run --silent build)
# The web demo, type-checked and bundled; the browser suite drives it in Debian's Chromium.
(cd sdk-ts && npx tsc -p examples/web/tsconfig.json && npm run --silent build:demo >/dev/null)
apt_install chromium fonts-noto-color-emoji
# The Rust client of the packed-SDK test: the Rust SDK's echo bot.
cargo build -p secureconnect-sdk --example bot --locked --quiet
(cd sdk-ts && SC_SERVER_BIN="$CARGO_TARGET_DIR/debug/secureconnect" SC_BOT_BIN="$CARGO_TARGET_DIR/debug/examples/bot" \
  SC_CHROMIUM=/usr/bin/chromium npm test --silent)
echo "browser screenshots: sdk-ts/test-results/"

step "cargo test (server integration suite on PostgreSQL + Cassandra + Redis + S3, with cluster and fault tests)"
# One test binary (server/tests/it); the Cassandra fault test pauses the shared Cassandra,
# so it runs alone afterwards.
cargo test -p secureconnect-server --tests --locked -- --include-ignored --skip cassandra_faults
cargo test -p secureconnect-server --test it --locked -- --include-ignored cassandra_faults
