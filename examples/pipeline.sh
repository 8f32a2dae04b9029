#!/bin/sh
# A shell pipeline: calls an API through a stored connection with `connrt request --json`
# and reads values out of the answer without jq (a three-line connrt script does it).
# usage: examples/pipeline.sh CONNECTION [PATH] [FIELD]   e.g. pipeline.sh github /user login
set -eu
CONNRT=${CONNRT:-$(dirname "$0")/../build/connrt}
id=$1 path=${2:-/me} field=${3:-email}

# {"status": ..., "headers": {...}, "body": <the decoded JSON body>}; a failed status
# exits non-zero, so `set -e` stops here
answer=$("$CONNRT" request "$id" GET "$path" --json)

# pick `status` and `body.FIELD` out of it
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'LUA'
local doc = require("cjson").decode(io.read("a"))
print(math.tointeger(doc.status), doc.body[arg[1]])
LUA
printf '%s' "$answer" | "$CONNRT" script "$script" "$field" | {
  read -r status value
  echo "status $status, $field: $value"
}
