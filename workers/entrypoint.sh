#!/bin/sh
# hyperq worker entrypoint: turns HYPERQ_* environment variables into hyperq-worker options,
# then *execs* the worker, so that SIGTERM (docker stop, kubectl delete, systemctl stop, scancel)
# reaches it directly: the running trial is handed back to the queue and the worker exits 0.
#
#   hyperq-worker-entrypoint [--extra-worker-option ...]   run a worker
#   hyperq-worker-entrypoint health                          health check (exit 0 healthy, 1 not)
#   hyperq-worker-entrypoint which                           say which worker command would run
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
#
# Which worker runs (the first that applies; the choice is logged when the worker starts):
#   HYPERQ_WORKER_CMD       a command, split on spaces, e.g. "/opt/venv/bin/python -m hyperq worker"
#   HYPERQ_WORKER_BIN       a worker program, e.g. /opt/venv/bin/hyperq-worker
#   HYPERQ_PYTHON           a Python with hyperq installed: runs "$HYPERQ_PYTHON -m hyperq worker"
#   hyperq-worker           on PATH (an activated venv, or the image's install)
#   ../.venv/bin/hyperq-worker, beside this script: a checkout set up as the README says
# `health` runs `hyperq worker-health` found the same way (HYPERQ_BIN, HYPERQ_PYTHON, PATH, .venv).
set -eu

prog=hyperq-worker-entrypoint
here=$(cd "$(dirname "$0")" && pwd)

die() {
    echo "$prog: error: $*" >&2
    exit 64
}

# find_program NAME EXPLICIT PYTHON_ARGS: sets $found (a command, split on spaces) and $found_by
find_program() {
    if [ -n "$2" ]; then
        found=$2
        found_by="the environment (${3%%=*})"
    elif [ -n "${HYPERQ_PYTHON:-}" ]; then
        [ -x "$HYPERQ_PYTHON" ] || die "HYPERQ_PYTHON=$HYPERQ_PYTHON is not an executable Python"
        found="$HYPERQ_PYTHON -m ${3#*=}"
        found_by="HYPERQ_PYTHON"
    elif found=$(command -v "$1" 2>/dev/null); then
        found_by="PATH"
    elif [ -x "$here/../.venv/bin/$1" ]; then
        found=$(cd "$here/../.venv/bin" && pwd)/$1
        found_by="the venv beside $prog ($here/../.venv)"
    else
        die "cannot find $1: it is not on PATH and there is no $here/../.venv/bin/$1. Set \
HYPERQ_PYTHON to the Python of the venv where hyperq is installed (e.g. HYPERQ_PYTHON=/path/to/.venv/bin/python), \
or HYPERQ_WORKER_CMD to the worker command, or activate that venv"
    fi
}

find_worker() {
    if [ -n "${HYPERQ_WORKER_CMD:-}" ]; then
        find_program hyperq-worker "$HYPERQ_WORKER_CMD" "HYPERQ_WORKER_CMD=hyperq worker"
    else
        find_program hyperq-worker "${HYPERQ_WORKER_BIN:-}" "HYPERQ_WORKER_BIN=hyperq worker"
    fi
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
        find_program hyperq "${HYPERQ_BIN:-}" "HYPERQ_BIN=hyperq"
        # shellcheck disable=SC2086  # a command split on spaces on purpose
        exec $found worker-health "$@"
        ;;
    which)
        find_worker
        echo "$found (found by $found_by)"
        exit 0
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

find_worker
echo "$prog: starting $found (found by $found_by)" >&2
# shellcheck disable=SC2086  # a command split on spaces on purpose
exec $found "$@"
