#!/bin/bash
# Starts MongoDB as a single-member replica set (rs0) with authentication: replica-set members
# authenticate each other with a key file, created here on the first start (kept in the
# mongo-config volume). The replica set itself is initiated by the service's healthcheck.
set -euo pipefail
keyfile=/data/configdb/keyfile
if [ ! -s "$keyfile" ]; then
    head -c 756 /dev/urandom | base64 > "$keyfile"
fi
chmod 400 "$keyfile"
chown mongodb:mongodb "$keyfile"
exec docker-entrypoint.sh "$@"
