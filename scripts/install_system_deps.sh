#!/usr/bin/env bash
# Install, if missing, the system packages the test suite needs: Redis, Chromium, a JDK (17+), Maven,
# nginx (Debian's nginx-light: `make run-proxy` and tests/test_proxy.py put it in front of gunicorn) and
# wrk, the load generator of benchmarks/bench_serving.py.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v wrk >/dev/null || need+=(wrk)  # benchmarks/bench_serving.py
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need[*]}"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; }; then
    echo "ERROR: could not install ${need[*]} with apt-get; install them by hand (Debian/Ubuntu names above)." >&2
    exit 1
  fi
fi

java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  echo "ERROR: Cassandra 5.0 needs a JDK 17 or newer; found '${java_major:-none}'. Install openjdk-17-jre-headless." >&2
  exit 1
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo "system packages ready: redis-server $(redis-server --version | awk '{print $3}'), $(/usr/bin/chromium --version 2>/dev/null | head -n1), java $java_major, $("$nginx_bin" -v 2>&1)"
