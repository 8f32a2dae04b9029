#!/bin/sh
# What `make fuzz` needs beyond `make deps`: clang and its runtime libraries (libFuzzer
# and the sanitizers), from the distribution's packages. Installs only what is missing.
set -eu
sh "$(dirname "$0")/../tools/apt-install.sh" "fuzz deps" clang libclang-rt-dev
