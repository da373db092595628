#!/usr/bin/env bash
# Debian packages for the live-stream and preview tests. Tests that need a missing one skip.
set -uo pipefail
need=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") \
    >/tmp/streamseg-apt.log 2>&1 || echo "system-deps: could not install ${need[*]} (see /tmp/streamseg-apt.log)"
fi
exit 0
