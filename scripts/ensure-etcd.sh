#!/usr/bin/env bash
# The etcd tests run the real etcd (Debian's etcd-server 3.4). Install it when it is missing and
# we may (root with apt-get); otherwise say what is needed. The package's service is not started.
set -euo pipefail
if command -v etcd >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing etcd-server (Debian) for the etcd tests..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq etcd-server etcd-client >/dev/null
  exit 0
fi
echo "the etcd tests need etcd on PATH: run 'apt-get install etcd-server etcd-client' as root" >&2
exit 1
