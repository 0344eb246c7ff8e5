#!/usr/bin/env bash
# Profile-guided build of chujing: an instrumented binary is driven by the load harness
# (run.sh: GET, 1 KiB and 64 KiB POSTs, clean and with personal data, to a destination abroad
# and one on the mainland, over HTTP/1.1 and, with curl, h2c), its counters are merged, and
# the release binary is rebuilt with them. The compiler then lays out and inlines for the
# paths those requests take. Measured in benches/load/README.md ("Session 12").
#
#   rustup component add llvm-tools            # llvm-profdata matching rustc's LLVM
#   apt-get install -y nginx-light wrk curl python3 bc   # what run.sh needs
#   benches/load/pgo.sh                        # → target/pgo/release/chujing
#   CHUJING_BIN=target/pgo/release/chujing benches/load/run.sh
#
# The profile holds only reverse-proxy traffic. The forward proxy's CONNECT and TLS
# interception code is outside it (the compiler treats it as rarely run; measured through an
# intercepting proxy it was no slower than the plain build); the scanner, policy, audit and
# pipeline it shares with the reverse proxy are in it.
# Env: TRAIN_DURATION=3 (s per scenario), TRAIN_H2=2000 (h2c requests per body kind).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SYSROOT="$(rustc --print sysroot)"
PROFDATA="$(ls "$SYSROOT"/lib/rustlib/*/bin/llvm-profdata 2>/dev/null | head -n1 || true)"
[ -x "$PROFDATA" ] || {
  echo "need llvm-profdata for $(rustc --version): rustup component add llvm-tools" >&2
  exit 1
}

# What the training run needs (tools, free ports), checked by run.sh before minutes of
# building; FLOOR_BIN as in the training run below.
PREFLIGHT=1 FLOOR_BIN=/nonexistent "$ROOT/benches/load/run.sh"

GEN_DIR="$ROOT/target/pgo-gen"   # instrumented build (its own target dir: other flags)
USE_DIR="$ROOT/target/pgo"       # the optimised build
PROFILES="$GEN_DIR/profiles"
rm -rf "$PROFILES"
mkdir -p "$PROFILES"

echo "1/4 instrumented build → $GEN_DIR" >&2
RUSTFLAGS="-Cprofile-generate=$PROFILES" \
  cargo build --release --locked --bin chujing --target-dir "$GEN_DIR" --manifest-path "$ROOT/Cargo.toml"

# %p: one file per process (run.sh starts two chujing); %m: per binary signature.
echo "2/4 training on the load harness's scenarios (log: $GEN_DIR/train.log)" >&2
LLVM_PROFILE_FILE="$PROFILES/chujing-%p-%m.profraw" \
  CHUJING_BIN="$GEN_DIR/release/chujing" FLOOR_BIN=/nonexistent \
  DURATION="${TRAIN_DURATION:-3}" ROUNDS=1 SOAK=0 H2_REQUESTS="${TRAIN_H2:-2000}" \
  "$ROOT/benches/load/run.sh" > "$GEN_DIR/train.log" 2>&1 || {
  echo "training run failed:" >&2
  tail -n 20 "$GEN_DIR/train.log" >&2
  exit 1
}
shopt -s nullglob
raw=("$PROFILES"/chujing-*.profraw)
[ "${#raw[@]}" -ge 2 ] || {
  echo "expected a profile from each of run.sh's two chujing processes, found ${#raw[@]} in $PROFILES" >&2
  exit 1
}

echo "3/4 merging ${#raw[@]} profiles" >&2
"$PROFDATA" merge -o "$GEN_DIR/chujing.profdata" "${raw[@]}"

echo "4/4 optimised build → $USE_DIR" >&2
RUSTFLAGS="-Cprofile-use=$GEN_DIR/chujing.profdata" \
  cargo build --release --locked --bin chujing --target-dir "$USE_DIR" --manifest-path "$ROOT/Cargo.toml"
echo "$USE_DIR/release/chujing"
