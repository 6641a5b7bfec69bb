#!/bin/bash
# Two proxies on one core at once: both pinned to CPU 0 (the scheduler shares it), one wrk each on CPU 1, the same
# two upstreams. Each round prints both proxies' CPU per request and the ratio B/A. Drift in the VM's speed hits
# both alike, so the ratio holds to about ±2 % where one proxy's CPU alone moves by up to 2x between minutes; the
# absolute figures are about 40 % above a proxy's own (the two share caches), so use it to rank two builds of the
# gateway, then confirm with the yardstick.
#   bench/profile/duel.sh "bin/gateway.js start -c bench/profile/bench.yaml" "/tmp/other/bin/gateway.js start -c bench/profile/bench.yaml" [rounds]
# A and B are what follows `node` (split on spaces: no paths with spaces); each must listen on $PORT. Env: YARDSTICK (default ../shared/bench), D (8s), P (/).
set -eu
cd "$(dirname "$0")/../.."
Y=${YARDSTICK:-../shared/bench}
A=$1; B=$2; R=${3:-3}
taskset -c 1 node "$Y/upstream.js" 19001 >/dev/null & U1=$!
taskset -c 1 node "$Y/upstream.js" 19002 >/dev/null & U2=$!
export UPSTREAM_A=http://127.0.0.1:19001 UPSTREAM_B=http://127.0.0.1:19002
start() { PORT=$2 taskset -c 0 node $1 >"/tmp/duel-$2.log" 2>&1 & echo $!; }
GA=$(start "$A" 19200); GB=$(start "$B" 19300)
trap 'kill -TERM $GA $GB $U1 $U2 2>/dev/null || true; pkill -f "wrk -t1 -c64 -d.* http://127.0.0.1:19[23]00" 2>/dev/null || true' EXIT
for p in 19200 19300; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$p/health" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:$p/health" || { echo "the proxy on $p did not come up (/tmp/duel-$p.log)" >&2; exit 1; }
done
TICK=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
load() { taskset -c 1 wrk -t1 -c64 -d"$1" "http://127.0.0.1:$2${P:-/}"; }
load 3s 19200 >/dev/null & W1=$!; load 3s 19300 >/dev/null & W2=$!; wait $W1 $W2
for r in $(seq "$R"); do
  a0=$(cpu $GA); b0=$(cpu $GB)
  load "${D:-8s}" 19200 >/tmp/duel-a.out & W1=$!
  load "${D:-8s}" 19300 >/tmp/duel-b.out & W2=$!
  wait $W1 $W2
  a1=$(cpu $GA); b1=$(cpu $GB)
  na=$(awk '/requests in/ { print $1 }' /tmp/duel-a.out); nb=$(awk '/requests in/ { print $1 }' /tmp/duel-b.out)
  [[ -n $na && -n $nb && $na -gt 0 && $nb -gt 0 ]] || { echo "round $r: wrk reported no requests" >&2; exit 1; }
  awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v na="$na" -v nb="$nb" -v r="$r" -v t="$TICK" 'BEGIN {
    ca = a * 1e6 / t / na; cb = b * 1e6 / t / nb
    printf "round %d  A %.1f µs/req (%d reqs)  B %.1f µs/req (%d reqs)  B/A %.3f\n", r, ca, na, cb, nb, cb / ca }'
done
