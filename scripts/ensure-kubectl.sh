#!/usr/bin/env bash
# test/kubectl.test.ts runs a real client-go client (kubectl) against the Kubernetes contract
# server. Install Debian's kubernetes-client when no kubectl is on PATH and we may (root with
# apt-get). Never fatal: without kubectl those tests are skipped and say why.
set -uo pipefail
if command -v kubectl >/dev/null; then
  echo "kubectl present: $(kubectl version --client 2>/dev/null | head -1)" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing kubernetes-client (Debian) for the kubectl tests..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null && command -v kubectl >/dev/null; then
    echo "installed $(kubectl version --client 2>/dev/null | head -1)" >&2
    exit 0
  fi
  echo "could not install kubernetes-client: the kubectl tests will be skipped" >&2
  exit 0
fi
echo "no kubectl on PATH: the kubectl tests will be skipped (run 'apt-get install kubernetes-client' as root)" >&2
exit 0
