#!/usr/bin/env bash
# Start, stop and scale hyperq workers on this machine.
#
#   scripts/local-workers.sh start N     start N more workers
#   scripts/local-workers.sh stop [N]    stop N workers (default: all), newest first
#   scripts/local-workers.sh scale N     start or stop workers until N are running
#   scripts/local-workers.sh status      list this machine's workers (exit 1 if none runs)
#
# Workers are configured by environment, as in workers/entrypoint.sh: HYPERQ_MONGO_URI
# (required), HYPERQ_SECRET, HYPERQ_EXP_KEY, HYPERQ_WORKER_ARGS, ... The worker command is the
# first of HYPERQ_WORKER_CMD, HYPERQ_PYTHON (-m hyperq worker), hyperq-worker on PATH, and the
# .venv of this checkout; `start` says which it uses. They run detached from
# this shell (setsid), with a pid file and a log in HYPERQ_RUN_DIR (default ~/.hyperq/workers).
# Stopping sends SIGTERM (the running trial goes back to the queue) and, after
# HYPERQ_STOP_TIMEOUT seconds (default 60), SIGKILL.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
entrypoint="${HYPERQ_ENTRYPOINT:-$here/../workers/entrypoint.sh}"
run_dir="${HYPERQ_RUN_DIR:-$HOME/.hyperq/workers}"
stop_timeout="${HYPERQ_STOP_TIMEOUT:-60}"
prog="$(basename "$0")"

die() { echo "$prog: error: $*" >&2; exit 2; }
usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

# the pid of worker SLOT if it is running (and still a hyperq worker), else nothing
live_pid() {
    local pidfile="$run_dir/worker-$1.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    ps -o args= -p "$pid" 2>/dev/null | grep -q hyperq || return 1
    echo "$pid"
}

# slots that have a pid file, in ascending order
slots() {
    local f
    for f in "$run_dir"/worker-*.pid; do
        [[ -e "$f" ]] || continue
        f="${f##*/worker-}"
        echo "${f%.pid}"
    done | sort -n
}

# slots whose worker runs; forget the pid files of the others
live_slots() {
    local slot
    for slot in $(slots); do
        if live_pid "$slot" >/dev/null; then
            echo "$slot"
        else
            rm -f "$run_dir/worker-$slot.pid"
        fi
    done
}

start() {
    local n="$1" slot=1 started=() failed=0 pid worker
    [[ -n "${HYPERQ_MONGO_URI:-${HYPERQ_MONGO:-}}${HYPERQ_MONGO_URI_FILE:-}" ]] \
        || die "set HYPERQ_MONGO_URI to the job store (mongodb://USER:PASS@HOST:27017/DB)"
    [[ -x "$entrypoint" ]] || die "$entrypoint is not executable (set HYPERQ_ENTRYPOINT)"
    worker="$("$entrypoint" which)" || die "no worker command to start (see above)"
    echo "worker command: $worker"
    mkdir -p "$run_dir"
    chmod 700 "$run_dir"
    live_slots >/dev/null
    while (( ${#started[@]} < n )); do
        if [[ -e "$run_dir/worker-$slot.pid" ]]; then
            slot=$((slot + 1))
            continue
        fi
        # setsid: the worker outlives this shell and an ssh session; the entrypoint execs the
        # worker, so $! is the worker's own pid
        setsid "$entrypoint" >>"$run_dir/worker-$slot.log" 2>&1 </dev/null &
        echo $! >"$run_dir/worker-$slot.pid"
        started+=("$slot")
    done
    sleep "${HYPERQ_START_CHECK:-1}"
    for slot in "${started[@]}"; do
        if pid="$(live_pid "$slot")"; then
            echo "started worker $slot (pid $pid, log $run_dir/worker-$slot.log)"
        else
            failed=$((failed + 1))
            rm -f "$run_dir/worker-$slot.pid"
            echo "$prog: worker $slot exited at once; its log $run_dir/worker-$slot.log ends:" >&2
            tail -n 5 "$run_dir/worker-$slot.log" | sed 's/^/    /' >&2
        fi
    done
    (( failed == 0 )) || exit 1
}

stop() {
    local n="$1" victims=() slot pid deadline
    mapfile -t victims < <(live_slots | sort -rn | head -n "$n")
    for slot in "${victims[@]}"; do
        pid="$(live_pid "$slot")" && kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + stop_timeout))
    for slot in "${victims[@]}"; do
        while pid="$(live_pid "$slot")"; do
            if (( SECONDS >= deadline )); then
                echo "$prog: worker $slot (pid $pid) ignored SIGTERM for ${stop_timeout}s: SIGKILL" >&2
                kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
                sleep 0.2
                break
            fi
            sleep 0.2
        done
        rm -f "$run_dir/worker-$slot.pid"
        echo "stopped worker $slot"
    done
}

count() { live_slots | wc -l | tr -d ' '; }

status() {
    local slot pid n=0
    for slot in $(live_slots); do
        pid="$(live_pid "$slot")" || continue
        echo "worker $slot: pid $pid, log $run_dir/worker-$slot.log"
        n=$((n + 1))
    done
    echo "$n worker(s) running on $(hostname)"
    (( n > 0 ))
}

cmd="${1:-}"
case "$cmd" in
    start)
        is_count "${2:-}" || usage
        start "$2"
        ;;
    stop)
        n="${2:-all}"
        [[ "$n" == all ]] && n=1000000
        is_count "$n" || usage
        [[ -d "$run_dir" ]] && stop "$n"
        echo "$(count 2>/dev/null || echo 0) worker(s) running on $(hostname)"
        ;;
    scale)
        is_count "${2:-}" || usage
        mkdir -p "$run_dir"
        current="$(count)"
        if (( current < $2 )); then
            start $(($2 - current))
        elif (( current > $2 )); then
            stop $((current - $2))
        fi
        echo "$(count) worker(s) running on $(hostname)"
        ;;
    status)
        mkdir -p "$run_dir"
        status
        ;;
    *)
        usage
        ;;
esac
