#!/usr/bin/env bash
# The status-page test drives a real headless browser: Debian's chromium (/usr/bin/chromium),
# through playwright-core, which never downloads a browser of its own. Install it when it is
# missing and we may (root with apt-get); otherwise say what is needed.
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "chromium present: $(chromium --version 2>/dev/null || echo "$(command -v chromium)")" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium (Debian) for the browser tests..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  if command -v chromium >/dev/null; then
    echo "installed $(chromium --version 2>/dev/null || echo chromium)" >&2
    exit 0
  fi
  echo "apt-get finished but chromium is still not on PATH" >&2
  exit 1
fi
echo "the browser tests need chromium on PATH: run 'apt-get install chromium' as root" >&2
exit 1
