#!/bin/sh
# Connecting an MCP-style protected resource with `connrt connect URL` and no connector
# file, against the local servers the specs use: oidc-provider with dynamic client
# registration and resource indicators, and beside it a protected resource (its /mcp
# answers 401 with RFC 9728 resource_metadata and accepts only tokens issued for it).
# A scripted user (john) signs in. Run after `make all`: sh examples/mcp.sh
#
# With a real MCP server it is one command: connrt connect https://mcp.example.com/mcp
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=$ROOT/build/mcp-example
rm -rf "$DIR"
mkdir -p "$DIR"

# the servers, stopped when this script ends (their standard input closes)
mkfifo "$DIR/server-stdin"
node spec/support/oidc-server.mjs --port 0 --registration --resource-server \
  --redirect http://127.0.0.1:8400/callback <"$DIR/server-stdin" >"$DIR/server.out" 2>"$DIR/server.log" &
SERVER=$!
exec 3>"$DIR/server-stdin"
trap 'exec 3>&-; kill $SERVER 2>/dev/null || true' EXIT
i=0
until [ -s "$DIR/server.out" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "mcp: the servers did not start:"; cat "$DIR/server.log"; exit 1; }
  sleep 0.1
done
RESOURCE=$(sed 's/.*"resource":"\([^"]*\)".*/\1/' "$DIR/server.out")/mcp
echo "== servers: $(cat "$DIR/server.out")"

export CONNRT_HOME="$DIR/home"
export CONNRT_REDIRECT_URL=http://127.0.0.1:8400/callback
export CONNRT_BROWSER="$ROOT/build/connrt script $ROOT/spec/support/browser.lua"
export SIGNIN_USER=john

echo "== connrt connect $RESOURCE --print-connector"
build/connrt connect "$RESOURCE" --print-connector
echo "== connrt connect $RESOURCE"
build/connrt connect "$RESOURCE" --timeout 60
echo "== connrt request 127-0-0-1 $RESOURCE"
build/connrt request 127-0-0-1 "$RESOURCE"
echo
echo "== connrt show 127-0-0-1"
build/connrt show 127-0-0-1
