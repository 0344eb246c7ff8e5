#!/usr/bin/env bash
# Load harness: chujing (inspection on) against nginx as a plain reverse proxy (the ceiling:
# no inspection), both in front of the same fixed upstream, driven by the same wrk settings.
# When the example `hyper_floor` is built, it runs too: the same stack as chujing (hyper and
# tokio, shaped alike) with none of chujing's work, so the gap splits into stack and chujing.
# Prints req/s, p50/p99 latency, non-2xx count and peak RSS per scenario, the chujing/nginx
# ratios, the CPU each request costs (the proxy's own user and kernel time and context
# switches, and the whole machine's), and a 60 s constant-memory run (RSS sampled every 5 s).
# Everything binds to loopback.
#
#   apt-get install -y nginx-light wrk curl python3 bc   # Debian/Ubuntu
#   cargo build --release --bin chujing --example hyper_floor
#   benches/load/run.sh        # env: DURATION=10 ROUNDS=3 CONNS=32 THREADS=2 SOAK=60 SOAK_BODY=1k_pi
#                              #      SCENARIOS="get 1k_clean 1k_pi 64k_clean 64k_pi" NGINX_LOG=off
#                              #      CHUJING_BIN=target/pgo/release/chujing (pgo.sh) H2_REQUESTS=0
#
# Not run in CI (it needs quiet cores to mean anything).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${CHUJING_BIN:-$ROOT/target/release/chujing}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
THREADS="${THREADS:-2}"
SOAK="${SOAK:-60}"
SOAK_BODY="${SOAK_BODY:-1k_pi}"   # body of the constant-memory run
SCENARIOS="${SCENARIOS:-get 1k_clean 1k_pi 64k_clean 64k_pi}"
ROUNDS="${ROUNDS:-3}"           # alternating rounds per scenario; the table shows medians
UP_PORT="${UP_PORT:-18081}"     # fixed upstream (nginx, static answer) on 127.0.0.2
NGX_PORT="${NGX_PORT:-18080}"   # nginx reverse proxy
CJ_PORT="${CJ_PORT:-18090}"     # chujing reverse listener, destination abroad (inspected)
CJ0_PORT="${CJ0_PORT:-18091}"   # chujing, destination mainland (no inspection)
FLOOR_PORT="${FLOOR_PORT:-18092}" # hyper_floor, if built
FLOOR_BIN="${FLOOR_BIN:-$ROOT/target/release/examples/hyper_floor}"

for tool in nginx wrk curl python3 bc; do
  command -v "$tool" >/dev/null || { echo "need $tool: apt-get install -y nginx-light wrk curl python3 bc" >&2; exit 1; }
done
# Every address this run listens on must be free: a held one would otherwise surface as
# nginx's bind error or a proxy that never answers, after the setup.
ADDRS=("127.0.0.2:$UP_PORT" "127.0.0.1:$NGX_PORT" "127.0.0.1:$CJ_PORT" "127.0.0.1:$((CJ_PORT + 5))"
  "127.0.0.1:$CJ0_PORT" "127.0.0.1:$((CJ0_PORT + 5))")
[ -x "$FLOOR_BIN" ] && ADDRS+=("127.0.0.1:$FLOOR_PORT")
for addr in "${ADDRS[@]}"; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
    echo "$addr is in use (another load run, or an nginx left running?); this run needs it" >&2
    exit 1
  fi
done
# PREFLIGHT=1: only the checks above (pgo.sh runs them before it builds the binary).
[ -n "${PREFLIGHT:-}" ] && exit 0
[ -x "$BIN" ] || { echo "need $BIN: cargo build --release --bin chujing" >&2; exit 1; }

WORK="$(mktemp -d /tmp/chujing-load.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for conf in upstream proxy; do
    [ -f "$WORK/$conf.pid" ] && kill "$(cat "$WORK/$conf.pid")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# --- bodies -----------------------------------------------------------------------------
# Clean: order-like JSON without personal data. PI: the same shape with a mobile number and
# an email in a record, repeated to the size (distinct-looking values are not needed: the
# work is the scan, and the transfer below approves them so both proxies forward).
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def body(size, pi):
    items, i = [], 0
    while len(json.dumps({"items": items})) < size - 120:
        rec = {"sku": f"SKU-{i:06d}", "qty": i % 7 + 1, "price": "19.90", "note": "colour blue, size M"}
        if pi and i % 4 == 0:
            rec["contact"] = {"mobile": "13812345678", "email": "zhang.wei@example.com"}
        items.append(rec); i += 1
    return json.dumps({"order": "A-1001", "items": items})
for name, size, pi in [("1k_clean", 1024, False), ("1k_pi", 1024, True),
                       ("64k_clean", 65536, False), ("64k_pi", 65536, True)]:
    data = body(size, pi)
    open(f"{work}/{name}.json", "w").write(data)
    lua = (f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
           f'local f = io.open("{work}/{name}.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
    open(f"{work}/{name}.lua", "w").write(lua)
PY

# --- fixed upstream and nginx ---------------------------------------------------------------
cat > "$WORK/upstream.conf" <<NGX
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
  server {
    listen 127.0.0.2:$UP_PORT;
    location / { return 200 '{"ok":true}'; }
  }
}
NGX
# NGINX_LOG=on gives the nginx proxy its default access log (one combined-format line per
# request, to a file), for a like-for-like look at logging: chujing audits every decision.
# The default, off, keeps nginx the bare ceiling.
case "${NGINX_LOG:-off}" in
  on) NGX_ACCESS_LOG="$WORK/access.log" ;;
  off) NGX_ACCESS_LOG=off ;;
  *) echo "NGINX_LOG must be on or off" >&2; exit 1 ;;
esac
cat > "$WORK/proxy.conf" <<NGX
worker_processes 2;
pid $WORK/proxy.pid;
error_log $WORK/proxy.err warn;
events { worker_connections 4096; }
http {
  access_log $NGX_ACCESS_LOG;
  keepalive_requests 1000000;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
  upstream fixed { server 127.0.0.2:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://fixed;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
  }
}
NGX
nginx -c "$WORK/upstream.conf" -p "$WORK"
nginx -c "$WORK/proxy.conf" -p "$WORK"

# --- chujing: reverse listener, destination abroad (DE) so every body is inspected --------
# Each proxy runs in a session of its own, as nginx puts itself when it daemonises. With the
# kernel's autogroup scheduling (the default on desktop and many server kernels) a session is
# a scheduling group: CPU is shared between groups first, then between a group's threads.
# Started from this script, chujing would share wrk's group while nginx has one of its own,
# and the two would not be measured alike. setsid execs in place here (a background job of a
# script is not a process-group leader), so $! stays the proxy's pid for RSS and cleanup.
SETSID=()
command -v setsid >/dev/null && SETSID=(setsid)
cat > "$WORK/chujing.toml" <<TOML
mode = "enforce"
[[listener]]
bind = "127.0.0.1:$CJ_PORT"
kind = "reverse"
[[route]]
upstream = "http://fixed.test:$UP_PORT"
[resolve]
"fixed.test" = ["127.0.0.2"]
[geo]
database = "$ROOT/config/geo/country.mmdb"
[[geo.override]]
cidr = "127.0.0.2/32"
country = "DE"
[classification]
fail_mode = "closed"
[[transfer]]
id = "SCC-LOAD"
legal_basis = "standard_contract"
countries = ["DE"]
categories = ["cn_mobile", "email"]
[audit]
path = "$WORK/audit.jsonl"
[volume]
backend = "memory"
[admin]
bind = "127.0.0.1:$((CJ_PORT + 5))"
TOML
RUST_LOG=warn "${SETSID[@]}" "$BIN" run --config "$WORK/chujing.toml" >"$WORK/chujing.log" 2>&1 &
CJ_PID=$!
PIDS+=("$CJ_PID")
# The same proxy with the destination mapped to the mainland (CN): rule 1 allows without
# scanning, so this separates the proxy's own cost from the inspection's.
sed -e "s/127.0.0.1:$CJ_PORT\"/127.0.0.1:$CJ0_PORT\"/" -e "s/127.0.0.1:$((CJ_PORT + 5))/127.0.0.1:$((CJ0_PORT + 5))/" \
  -e 's/country = "DE"/country = "CN"/' \
  -e "s#$WORK/audit.jsonl#$WORK/audit-cn.jsonl#" "$WORK/chujing.toml" > "$WORK/chujing-cn.toml"
RUST_LOG=warn "${SETSID[@]}" "$BIN" run --config "$WORK/chujing-cn.toml" >"$WORK/chujing-cn.log" 2>&1 &
CJ0_PID=$!
PIDS+=("$CJ0_PID")
PORTS=("$NGX_PORT" "$CJ_PORT" "$CJ0_PORT")
if [ -x "$FLOOR_BIN" ]; then
  "${SETSID[@]}" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "127.0.0.2:$UP_PORT" "$(nproc)" >"$WORK/floor.log" 2>&1 &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  PORTS+=("$FLOOR_PORT")
else
  echo "($FLOOR_BIN not built: no hyper-alone column; cargo build --release --example hyper_floor)" >&2
fi
for _ in $(seq 100); do
  up=1
  for port in "${PORTS[@]}"; do curl -s -o /dev/null "http://127.0.0.1:$port/" || up=; done
  [ -n "$up" ] && break
  sleep 0.1
done

# Sanity: both forward every scenario with 200 (a 403 would make chujing look fast).
for s in 1k_clean 1k_pi 64k_clean 64k_pi; do
  for port in "${PORTS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      --data-binary "@$WORK/$s.json" "http://127.0.0.1:$port/orders")
    [ "$code" = 200 ] || { echo "sanity: $s on :$port gave $code" >&2; cat "$WORK/chujing.log" >&2; exit 1; }
  done
done

# H2_REQUESTS=N (default 0) sends N h2c requests (prior knowledge) per body to each chujing,
# all of which must be answered 200. wrk speaks HTTP/1.1 only, so this is not measured;
# pgo.sh uses it to put the HTTP/2 path into its profile. One curl per request, 8 at a time:
# curl 7.88 fails every request after the first on a reused h2c connection ("Error in the
# HTTP2 framing layer", against nginx's h2c as well).
if [ "${H2_REQUESTS:-0}" -gt 0 ]; then
  for s in 1k_clean 1k_pi; do
    for port in "$CJ_PORT" "$CJ0_PORT"; do
      ok=$(seq "$H2_REQUESTS" | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' --http2-prior-knowledge \
        -H 'content-type: application/json' --data-binary "@$WORK/$s.json" "http://127.0.0.1:$port/orders?n={}" |
        grep -cx 200 || true)
      [ "$ok" = "$H2_REQUESTS" ] || { echo "h2c: $s on :$port: $ok of $H2_REQUESTS answered 200" >&2; exit 1; }
    done
  done
  echo "h2c: $H2_REQUESTS requests per body to each chujing, all 200"
fi

hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# The nginx proxy's worker processes (the master only supervises them).
nginx_workers() { pgrep -P "$(cat "$WORK/proxy.pid")"; }
# nginx: the largest peak of the proxy's master and workers (each worker is a process).
nginx_hwm_kb() {
  local max=0
  for pid in "$(cat "$WORK/proxy.pid")" $(nginx_workers); do
    local v; v=$(hwm_kb "$pid"); [ "${v:-0}" -gt "$max" ] && max=$v
  done
  echo "$max"
}

# CPU accounting around a run, as "proxy_user proxy_kernel (ticks) involuntary voluntary
# (context switches) machine_user machine_kernel (ticks)": the proxy's own threads from
# /proc/PID (a process's utime/stime include its threads; context switches are counted per
# thread), the machine from /proc/stat (every process: wrk and the upstream too, which on a
# saturated machine is what bounds req/s). Kernel is system + irq + softirq.
cpu_snapshot() { # pid...
  local pu=0 pk=0 inv=0 vol=0 pid
  for pid in "$@"; do
    read -r u k < <(awk '{sub(/^.*\) /, ""); print $12, $13}' "/proc/$pid/stat")
    pu=$((pu + u)); pk=$((pk + k))
    read -r i v < <(cat "/proc/$pid"/task/*/status 2>/dev/null | awk '/^nonvoluntary_ctxt_switches/ {i += $2} /^voluntary_ctxt_switches/ {v += $2} END {print i + 0, v + 0}')
    inv=$((inv + i)); vol=$((vol + v))
  done
  awk -v pu=$pu -v pk=$pk -v inv=$inv -v vol=$vol '$1 == "cpu" {print pu, pk, inv, vol, $2 + $3, $4 + $7 + $8; exit}' /proc/stat
}
CLK_TCK=$(getconf CLK_TCK)

# wrk's latency with its unit (us, ms, s) → ms
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }
# → "req/s p50_ms p99_ms non2xx" and, per request, "proxy_user_us proxy_kernel_us
# involuntary voluntary machine_user_us machine_kernel_us machine_total_us" (the context
# switches are the proxy's threads'; the machine's CPU is every process's)
run_wrk() { # port scenario proxy-pid...
  local port=$1 scenario=$2 script=()
  shift 2
  [ "$scenario" != get ] && script=(-s "$WORK/$scenario.lua")
  local before after
  before=$(cpu_snapshot "$@")
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" "http://127.0.0.1:$port/orders" > "$WORK/wrk.out"
  after=$(cpu_snapshot "$@")
  local rps p50 p99 bad n
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out" | to_ms)
  bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out"); bad=${bad:-0}
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  echo "$rps $p50 $p99 $bad $(awk -v n="$n" -v hz="$CLK_TCK" -v b="$before" -v a="$after" 'BEGIN {
    split(b, x, " "); split(a, y, " "); d = n > 0 ? n : 1; us = 1e6 / hz / d
    mu = (y[5] - x[5]) * us; mk = (y[6] - x[6]) * us
    printf "%.2f %.2f %.3f %.3f %.2f %.2f %.2f", (y[1] - x[1]) * us, (y[2] - x[2]) * us, (y[3] - x[3]) / d, (y[4] - x[4]) / d, mu, mk, mu + mk }')"
}

echo
autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo "?")
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s --latency; median of $ROUNDS round(s); nginx access log ${NGINX_LOG:-off}; $(nproc) cores; sched_autogroup_enabled=$autogroup; $(date -u +%FT%TZ)"
echo "chujing: ${BIN#"$ROOT"/}"
echo
printf '| scenario | nginx req/s | chujing req/s | ratio | nginx p50 / p99 ms | chujing p50 / p99 ms | Δp99 ms | chujing, no inspection: req/s (ratio) | hyper alone: req/s (ratio) | non-2xx (n/c) |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
# Each scenario runs ROUNDS times, nginx and chujing alternating, and each column is the
# median over the rounds: on a shared machine, load from elsewhere then shifts a round of
# both sides rather than one side's only number.
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
rounds_seen=""
paired=""
cpu_rows=""
for s in $SCENARIOS; do
  declare -A col=()
  for _ in $(seq "$ROUNDS"); do
    read -r n_rps n_p50 n_p99 n_bad n_pu n_pk n_inv n_vol n_mu n_mk n_mt < <(run_wrk "$NGX_PORT" "$s" $(nginx_workers))
    read -r c_rps c_p50 c_p99 c_bad c_pu c_pk c_inv c_vol c_mu c_mk c_mt < <(run_wrk "$CJ_PORT" "$s" "$CJ_PID")
    read -r z_rps _ _ _ z_pu z_pk z_inv z_vol z_mu z_mk z_mt < <(run_wrk "$CJ0_PORT" "$s" "$CJ0_PID")
    f_rps=0 f_pu=0 f_pk=0 f_inv=0 f_vol=0 f_mu=0 f_mk=0 f_mt=0
    [ -x "$FLOOR_BIN" ] && read -r f_rps _ _ _ f_pu f_pk f_inv f_vol f_mu f_mk f_mt < <(run_wrk "$FLOOR_PORT" "$s" "$FLOOR_PID")
    for k in n_rps n_p50 n_p99 c_rps c_p50 c_p99 z_rps f_rps; do col[$k]+="${!k} "; done
    for p in n c z f; do for m in pu pk inv vol mu mk mt; do k=${p}_$m; col[$k]+="${!k} "; done; done
    col[n_bad]=$(( ${col[n_bad]:-0} + n_bad )); col[c_bad]=$(( ${col[c_bad]:-0} + c_bad ))
  done
  rounds_seen+="$s: nginx ${col[n_rps]}/ chujing ${col[c_rps]}/ no inspection ${col[z_rps]}/ hyper alone ${col[f_rps]}req/s; p99 ms nginx ${col[n_p99]}/ chujing ${col[c_p99]}
"
  # Each chujing round against the nginx round just before it: how often a single round
  # meets the 1 KiB targets (>= 0.8x req/s, p99 within +1 ms), which a median alone hides.
  paired+="$(awk -v s="$s" -v nr="${col[n_rps]}" -v cr="${col[c_rps]}" -v np="${col[n_p99]}" -v cp="${col[c_p99]}" \
    'BEGIN { n = split(nr, a, " "); split(cr, b, " "); split(np, x, " "); split(cp, y, " "); r = ""; d = ""; ok_r = 0; ok_d = 0
      for (i = 1; i <= n; i++) { q = b[i] / a[i]; e = y[i] - x[i]; r = r sprintf(" %.2f", q); d = d sprintf(" %+.2f", e); ok_r += (q >= 0.8); ok_d += (e <= 1) }
      printf "%s: ratio%s (%d of %d rounds >= 0.80x); dp99 ms%s (%d of %d <= +1 ms)", s, r, ok_r, n, d, ok_d, n }')
"
  for k in n_rps n_p50 n_p99 c_rps c_p50 c_p99 z_rps f_rps; do col[$k]=$(echo "${col[$k]}" | median); done
  awk -v s="$s" -v nr="${col[n_rps]}" -v cr="${col[c_rps]}" -v zr="${col[z_rps]}" -v fr="${col[f_rps]}" -v n50="${col[n_p50]}" -v n99="${col[n_p99]}" -v c50="${col[c_p50]}" -v c99="${col[c_p99]}" -v nb="${col[n_bad]}" -v cb="${col[c_bad]}" \
    'BEGIN { floor = fr > 0 ? sprintf("%.0f (%.2f×)", fr, fr/nr) : "not built"; printf "| %s | %.0f | %.0f | %.2f× | %.2f / %.2f | %.2f / %.2f | %+.2f | %.0f (%.2f×) | %s | %s / %s |\n", s, nr, cr, cr/nr, n50, n99, c50, c99, c99-n99, zr, zr/nr, floor, nb, cb }'
  for p in n c z f; do for m in pu pk inv vol mu mk mt; do k=${p}_$m; col[$k]=$(echo "${col[$k]}" | median); done; done
  for p in n c z f; do
    [ "$p" = f ] && [ ! -x "$FLOOR_BIN" ] && continue
    case $p in n) who="nginx" ;; c) who="chujing" ;; z) who="chujing, no inspection" ;; f) who="hyper alone" ;; esac
    cpu_rows+="$(awk -v s="$s" -v who="$who" -v pu="${col[${p}_pu]}" -v pk="${col[${p}_pk]}" -v inv="${col[${p}_inv]}" -v vol="${col[${p}_vol]}" -v mu="${col[${p}_mu]}" -v mk="${col[${p}_mk]}" -v mt="${col[${p}_mt]}" \
      'BEGIN { printf "| %s | %s | %.1f / %.1f | %.2f / %.3f | %.1f / %.1f | %.1f |", s, who, pu, pk, inv, vol, mu, mk, mt }')
"
  done
  unset col
done
echo
echo "CPU per request, µs (median of the rounds): the proxy's own threads (/proc/PID), and the"
echo "machine's, every process: wrk and the upstream too, which on saturated cores is what bounds req/s"
echo "(/proc/stat; kernel = system + irq + softirq). Tick-based: ±1 tick over the run."
echo
printf '| scenario | proxy | proxy user / kernel | proxy context switches per request: involuntary / voluntary | machine user / kernel | machine total |\n'
printf '|---|---|---:|---:|---:|---:|\n'
printf '%s' "$cpu_rows"
echo
echo "each round, in order (the spread is the noise the medians smooth):"
printf '%s' "$rounds_seen"
echo
echo "each round's chujing against the nginx round before it:"
printf '%s' "$paired"
echo
printf 'peak RSS: nginx (largest proxy process) %.1f MiB, chujing %.1f MiB\n' \
  "$(echo "$(nginx_hwm_kb)/1024" | bc -l)" "$(echo "$(hwm_kb "$CJ_PID")/1024" | bc -l)"

# --- constant memory: SOAK seconds of 1 KiB PI POSTs, RSS sampled every 5 s -------------
if [ "$SOAK" -gt 0 ]; then
  wrk -t"$THREADS" -c"$CONNS" -d"${SOAK}s" -s "$WORK/$SOAK_BODY.lua" "http://127.0.0.1:$CJ_PORT/orders" > "$WORK/soak.out" &
  WRK_PID=$!
  samples=()
  while kill -0 "$WRK_PID" 2>/dev/null; do
    samples+=("$(rss_kb "$CJ_PID")")
    sleep 5
  done
  wait "$WRK_PID" || true
  echo
  echo "constant memory, ${SOAK}s of $SOAK_BODY POSTs ($(awk '/requests in/ {print $1}' "$WORK/soak.out") requests):"
  echo "chujing RSS every 5 s (MiB): $(for s in "${samples[@]}"; do printf '%.1f ' "$(echo "$s/1024" | bc -l)"; done)"
fi
