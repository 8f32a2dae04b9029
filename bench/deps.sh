#!/bin/sh
# What `make bench` needs beyond `make deps`: nginx (the upstream API; make deps has it
# for the specs too), wrk (keep-alive throughput through connrt proxy), Python's
# requests-oauthlib (a peer to compare with) and valgrind (instruction counts).
set -eu
sh "$(dirname "$0")/../tools/apt-install.sh" "bench deps" nginx-light wrk python3-requests-oauthlib valgrind
