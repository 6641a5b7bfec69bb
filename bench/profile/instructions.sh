#!/bin/bash
# Instructions per proxied request under callgrind: deterministic where CPU time on a shared VM drifts by up to 2x.
# A proxy (the gateway or the yardstick's node + http-proxy) runs under valgrind against the yardstick's two
# upstreams; after WARM requests (tier-up goes by invocation counts, not time) it counts the instructions of
# exactly N more, on C connections. Timed work (health probes, the log's 5 ms batches, the ISO time string) runs
# about 50 times more often per request under valgrind than at full speed, so the gateway's count is a ceiling.
#   bench/profile/instructions.sh LABEL [N]          the gateway with bench/profile/bench.yaml
#   PROXY="$YARDSTICK/proxies/node-proxy.js" bench/profile/instructions.sh plain
# Env: PROXY (what follows `node`; it must listen on $PORT), YARDSTICK (default ../shared/bench), C (64), WARM
# (16000), P (path, /), OFF (port offset, to run two at once), NODEARGS (e.g. --perf-basic-prof), VGARGS (e.g.
# "--cache-sim=yes --branch-sim=yes"). Output in /tmp/instructions/LABEL (callgrind_annotate reads it).
set -eu
cd "$(dirname "$0")/../.."
HERE=bench/profile
Y=${YARDSTICK:-../shared/bench}
L=$1; N=${2:-6000}; OFF=${OFF:-0}
OUT=/tmp/instructions/$L
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
rm -rf "$OUT"; mkdir -p "$OUT"
node "$Y/upstream.js" $((19001 + OFF)) >/dev/null & U1=$!
node "$Y/upstream.js" $((19002 + OFF)) >/dev/null & U2=$!
G=
trap 'kill $U1 $U2 $G 2>/dev/null' EXIT
export UPSTREAM_A=http://127.0.0.1:$((19001 + OFF)) UPSTREAM_B=http://127.0.0.1:$((19002 + OFF)) PORT=$((19200 + OFF))
valgrind --tool=callgrind ${VGARGS:-} --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
  node ${NODEARGS:-} ${PROXY:-bin/gateway.js start -c $HERE/bench.yaml} >"$OUT/proxy.log" 2>"$OUT/valgrind.log" & G=$!
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.5; done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" || { echo "the proxy did not come up; see $OUT" >&2; exit 1; }
node --import tsx $HERE/load.ts "${WARM:-16000}" "${C:-64}" "${P:-/}" "$PORT" >/dev/null
callgrind_control -i on $G >/dev/null
result=$(node --import tsx $HERE/load.ts "$N" "${C:-64}" "${P:-/}" "$PORT")
callgrind_control -i off $G >/dev/null
callgrind_control -d $G >/dev/null
sleep 1
kill -TERM $G; wait $G 2>/dev/null || true
file=$(ls -S "$OUT"/callgrind.out* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$L $result instructions=$total per_request=$((total / N)) profile=$file"
