#!/bin/bash
# What each part of the gateway costs next to the yardstick's node + http-proxy: duel.sh with the plain proxy as A
# and, as B, the plain proxy itself (the duel's own bias), the full gateway, the gateway without its access line,
# and without access line and health checks; then the plain proxy with the gateway's access line added
# (node-proxy-access.js): its `finish` hook alone, the line built and dropped, a constant line written, the line
# built and written. The mean B/A of each shows how much of the gap each part is.
#   bench/profile/account.sh [rounds]        Env as duel.sh (YARDSTICK, D, P).
set -euo pipefail
cd "$(dirname "$0")/../.."
# --env-file does not override a variable already set: the rows must not inherit the caller's level, nor a format
# that would take the access line off its fast path.
unset GATEWAY_LOG_LEVEL GATEWAY_LOG_FORMAT
# bin/gateway.js runs dist/: a build older than src/ would measure old code.
if [[ -n $(find src -name '*.ts' -newer dist/cli.js 2>/dev/null) || ! -f dist/cli.js ]]; then
  echo "warning: dist/ is older than src/; run \`npm run build\` first" >&2
fi
HERE=bench/profile
ROUNDS=${1:-4}
PLAIN="${YARDSTICK:-../shared/bench}/proxies/node-proxy.js"
GW="bin/gateway.js start -c"
QUIET="--env-file=$HERE/no-access-line.env"
row() {
  printf '%-50s' "$1"
  bash "$HERE/duel.sh" "$PLAIN" "$2" "$ROUNDS" |
    awk '{ r = r sprintf(" %s", $NF); s += $NF; n++ } END { if (!n) exit 1; printf "%s   mean %.3f\n", r, s / n }'
}
echo "B/A, CPU per request against node + http-proxy (A), one duel of $ROUNDS rounds each"
row "node + http-proxy itself (the duel's bias)" "$PLAIN"
row "the gateway" "$GW $HERE/bench.yaml"
row "the gateway, no access line" "$QUIET $GW $HERE/bench.yaml"
row "the gateway, no access line, no health checks" "$QUIET $GW $HERE/bench-no-health.yaml"
ACC="$HERE/node-proxy-access.js"
row "node + http-proxy, a finish hook" "$ACC hook"
row "node + http-proxy, access line built, dropped" "$ACC build"
row "node + http-proxy, a constant line written" "$ACC write"
row "node + http-proxy with the gateway's access line" "$ACC line"
