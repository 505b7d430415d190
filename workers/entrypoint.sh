#!/bin/sh
# hyperq worker entrypoint: turns HYPERQ_* environment variables into hyperq-worker options,
# then *execs* the worker, so that SIGTERM (docker stop, kubectl delete, systemctl stop, scancel)
# reaches it directly: the running trial is handed back to the queue and the worker exits 0.
#
#   hyperq-worker-entrypoint [--extra-worker-option ...]   run a worker
#   hyperq-worker-entrypoint health                          health check (exit 0 healthy, 1 not)
#   hyperq-worker-entrypoint COMMAND [ARGS...]               run any other command (e.g. sh)
#
# Environment (all optional except the URI):
#   HYPERQ_MONGO_URI        job store, mongodb://USER:PASS@HOST:27017/DB?authSource=admin
#                           (HYPERQ_MONGO is accepted too); passed to the worker through its
#                           environment, never on its command line, so `ps` does not show it
#   HYPERQ_MONGO_URI_FILE   read the URI from this file instead (Docker/Kubernetes secrets)
#   HYPERQ_SECRET           HMAC secret; the worker refuses unsigned or altered domains
#   HYPERQ_SECRET_FILE      read the secret from this file instead
#   HYPERQ_EXP_KEY          serve only this experiment (default: every experiment)
#   HYPERQ_MAX_JOBS, HYPERQ_IDLE_TIMEOUT, HYPERQ_WORKDIR, HYPERQ_HEARTBEAT, HYPERQ_LEASE,
#   HYPERQ_POLL_INTERVAL, HYPERQ_RECONNECT_TIMEOUT, HYPERQ_LOG_LEVEL
#                           the hyperq-worker options of the same names
#   HYPERQ_WORKER_ARGS      more options, split on spaces (no quoting)
#   HYPERQ_WORKER_BIN       the worker program (default: hyperq-worker)
#   HYPERQ_BIN              the hyperq program used by `health` (default: hyperq)
set -eu

prog=hyperq-worker-entrypoint

die() {
    echo "$prog: error: $*" >&2
    exit 64
}

if [ -n "${HYPERQ_MONGO_URI_FILE:-}" ]; then
    [ -r "$HYPERQ_MONGO_URI_FILE" ] || die "HYPERQ_MONGO_URI_FILE=$HYPERQ_MONGO_URI_FILE is not readable"
    HYPERQ_MONGO_URI=$(cat "$HYPERQ_MONGO_URI_FILE")
fi
if [ -n "${HYPERQ_SECRET_FILE:-}" ]; then
    [ -r "$HYPERQ_SECRET_FILE" ] || die "HYPERQ_SECRET_FILE=$HYPERQ_SECRET_FILE is not readable"
    HYPERQ_SECRET=$(cat "$HYPERQ_SECRET_FILE")
    export HYPERQ_SECRET
fi
uri=${HYPERQ_MONGO_URI:-${HYPERQ_MONGO:-}}

case "${1:-}" in
    health)
        shift
        [ -n "$uri" ] || { echo "unhealthy: HYPERQ_MONGO_URI is not set" >&2; exit 1; }
        HYPERQ_MONGO_URI=$uri
        export HYPERQ_MONGO_URI
        exec "${HYPERQ_BIN:-hyperq}" worker-health "$@"
        ;;
    ""|-*) ;;
    *) exec "$@" ;;
esac

[ -n "$uri" ] || die "set HYPERQ_MONGO_URI (or HYPERQ_MONGO_URI_FILE) to the job store, e.g. mongodb://USER:PASSWORD@HOST:27017/hyperq?authSource=admin"
HYPERQ_MONGO=$uri  # the worker's own variable for --mongo
export HYPERQ_MONGO
unset HYPERQ_MONGO_URI

# options from the environment come first, the given arguments last (so they win)
n_given=$#
val=""
for pair in EXP_KEY:--exp-key MAX_JOBS:--max-jobs IDLE_TIMEOUT:--idle-timeout \
            WORKDIR:--workdir HEARTBEAT:--heartbeat LEASE:--lease \
            POLL_INTERVAL:--poll-interval RECONNECT_TIMEOUT:--reconnect-timeout \
            LOG_LEVEL:--log-level; do
    eval "val=\${HYPERQ_${pair%%:*}:-}"
    if [ -n "$val" ]; then
        set -- "$@" "${pair#*:}" "$val"
    fi
done
# shellcheck disable=SC2086  # HYPERQ_WORKER_ARGS is split on spaces on purpose
set -- "$@" ${HYPERQ_WORKER_ARGS:-}
while [ "$n_given" -gt 0 ]; do  # rotate the given arguments to the end
    set -- "$@" "$1"
    shift
    n_given=$((n_given - 1))
done

exec "${HYPERQ_WORKER_BIN:-hyperq-worker}" "$@"
