#!/bin/sh
# make demo: connects a scripted user (john) at the local authorization server the specs
# use, with the example connector, then shows the stored connection.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO=$ROOT/build/demo
rm -rf "$DEMO"
mkdir -p "$DEMO"

# the authorization server: oidc-provider on 127.0.0.1:9400, stopped when this script ends
mkfifo "$DEMO/server-stdin"
node spec/support/oidc-server.mjs --port 9400 --redirect http://127.0.0.1:8400/callback \
  <"$DEMO/server-stdin" >"$DEMO/server.out" 2>"$DEMO/server.log" &
SERVER=$!
exec 3>"$DEMO/server-stdin"
trap 'exec 3>&-; kill $SERVER 2>/dev/null || true' EXIT
i=0
until [ -s "$DEMO/server.out" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: the authorization server did not start:"; cat "$DEMO/server.log"; exit 1; }
  sleep 0.1
done
echo "== authorization server: $(cat "$DEMO/server.out")"

export CONNRT_HOME="$DEMO/home"
export CONNRT_REDIRECT_URL=http://127.0.0.1:8400/callback
# the "browser" is a scripted user who signs in as john and approves
export CONNRT_BROWSER="$ROOT/build/connrt script $ROOT/spec/support/browser.lua"
export SIGNIN_USER=john SIGNIN_LOG="$DEMO/browser.log"
export CONNRT_CLIENT_SECRET=basic-secret

echo "== redirect URL to register with the app: $(build/connrt redirect-url)"
echo "== connrt run examples/local-oidc.lua --client-id connrt-basic --field server=http://127.0.0.1:9400"
build/connrt run examples/local-oidc.lua --client-id connrt-basic --field server=http://127.0.0.1:9400 --timeout 60
echo "== what the browser saw:"
sed 's/^/   /' "$DEMO/browser.log"
echo "== connrt list"
build/connrt list
echo "== connrt show local-oidc"
build/connrt show local-oidc
