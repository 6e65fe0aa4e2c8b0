#!/usr/bin/env bash
# Issue 16, acceptance 6: no test depends on the day or hour it runs. Runs the unit and database (PGlite) suites
# with the clock a day, a month and a year ahead, under Debian's faketime (libfaketime preloaded into Node and every
# child it starts). The monotonic clock is left alone so timers and timeouts behave. PostgreSQL's own clock cannot be
# moved from here, so the database suite runs on the embedded database, whose clock is Node's.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=""
for candidate in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
  [ -f "$candidate" ] && lib="$candidate" && break
done
if [ -z "$lib" ]; then
  echo "test:clock needs libfaketime: apt-get install -y faketime" >&2
  exit 1
fi
for offset in ${TEST_CLOCK_OFFSETS:-+1d +31d +366d}; do
  echo "== the clock at ${offset} (today is $(date -u +%F); the tests see $(LD_PRELOAD="$lib" FAKETIME="$offset" date -u +%F))"
  export LD_PRELOAD="$lib" FAKETIME="$offset" FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_RESET=1
  npm run -s test:unit
  npm run -s test:pglite
  unset LD_PRELOAD FAKETIME FAKETIME_DONT_FAKE_MONOTONIC FAKETIME_DONT_RESET
done
echo "== test:clock passed at ${TEST_CLOCK_OFFSETS:-+1d +31d +366d}"
