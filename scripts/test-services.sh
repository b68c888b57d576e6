#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to, when they are missing: nginx (a real
# TLS origin, the benchmark peer), redis-server (shared state), chromium (pages in a browser).
# Tests start their own servers on ephemeral loopback ports. Also gcc (and the headers of
# Debian's python3, when the venv uses it) for compiling the hot path with mypyc.
set -euo pipefail
need=()
for pkg_bin in "redis-server:redis-server" "nginx:nginx" "chromium:chromium"; do
  pkg=${pkg_bin%%:*}; bin=${pkg_bin##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
command -v gcc >/dev/null 2>&1 || need+=(gcc)
venv_python=.venv/bin/python
if [ -x "$venv_python" ] && [ "$(readlink -f "$venv_python")" = "$(readlink -f /usr/bin/python3)" ]; then
  include=$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$include/Python.h" ] || need+=(python3-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${need[@]}"
fi
