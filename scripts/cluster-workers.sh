#!/usr/bin/env bash
# Start, stop and scale hyperq workers on a list of hosts over ssh.
#
#   scripts/cluster-workers.sh HOSTS install      copy the launcher to each host (~/.hyperq)
#   scripts/cluster-workers.sh HOSTS start N      start N more workers on each host
#   scripts/cluster-workers.sh HOSTS stop [N]     stop N workers (default: all) on each host
#   scripts/cluster-workers.sh HOSTS scale TOTAL  spread TOTAL workers evenly over the hosts
#   scripts/cluster-workers.sh HOSTS status       workers on each host
#
# HOSTS is a file with one ssh destination ([user@]host) per line; '#' starts a comment.
# Each host needs hyperq installed (hyperq-worker on its PATH, or HYPERQ_PYTHON naming the
# Python of the venv it is installed in) and key-based ssh. The HYPERQ_* variables of this shell (HYPERQ_MONGO_URI, HYPERQ_SECRET,
# HYPERQ_EXP_KEY, HYPERQ_WORKER_ARGS, ...) are sent to the hosts on ssh's standard input, not on
# a command line, so they do not show in process lists. HYPERQ_SSH overrides the ssh command
# (default: ssh -o BatchMode=yes). start, stop, scale and status install the launcher first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
prog="$(basename "$0")"
read -r -a ssh_cmd <<<"${HYPERQ_SSH:-ssh -o BatchMode=yes}"

die() { echo "$prog: error: $*" >&2; exit 2; }
usage() { sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

[[ $# -ge 2 ]] || usage
hosts_file="$1"
cmd="$2"
arg="${3:-}"
[[ -r "$hosts_file" ]] || die "cannot read the host list $hosts_file"
mapfile -t hosts < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$hosts_file" | grep -v '^$' || true)
(( ${#hosts[@]} > 0 )) || die "no hosts in $hosts_file"

# the HYPERQ_* variables of this shell as shell assignments (HYPERQ_SSH excluded)
env_script() {
    local name
    while IFS= read -r name; do
        [[ "$name" == HYPERQ_SSH ]] && continue
        printf 'export %s=%q\n' "$name" "${!name}"
    done < <(compgen -e | grep '^HYPERQ_' || true)
}

# run the remote launcher on HOST with ARGS, the environment sent on standard input
remote() {
    local host="$1"
    shift
    # shellcheck disable=SC2016  # $HOME expands on the remote host
    { env_script; printf '"$HOME/.hyperq/scripts/local-workers.sh"'; printf ' %q' "$@"; echo; } \
        | "${ssh_cmd[@]}" "$host" bash -s
}

install() {
    local host="$1"
    # shellcheck disable=SC2016  # $HOME expands on the remote host
    tar -C "$repo" -cf - workers/entrypoint.sh scripts/local-workers.sh \
        | "${ssh_cmd[@]}" "$host" 'mkdir -p "$HOME/.hyperq" && tar -C "$HOME/.hyperq" -xf -'
}

# run "FUNCTION HOST ARGS" for every host, prefixing output with the host; fail if any fails
each_host() {
    local fn="$1" host rc=0
    shift
    for host in "${hosts[@]}"; do
        if ! "$fn" "$host" "$@" 2>&1 | sed "s/^/[$host] /"; then
            rc=1
        fi
    done
    return "$rc"
}

on_host() {  # HOST ARGS...: install, then run the launcher
    local host="$1"
    shift
    install "$host" && remote "$host" "$@"
}

case "$cmd" in
    install)
        each_host install
        ;;
    start)
        [[ "$arg" =~ ^[0-9]+$ ]] || usage
        each_host on_host start "$arg"
        ;;
    stop)
        each_host on_host stop "${arg:-all}"
        ;;
    status)
        each_host on_host status
        ;;
    scale)
        [[ "$arg" =~ ^[0-9]+$ ]] || usage
        n="${#hosts[@]}"
        rc=0
        for i in "${!hosts[@]}"; do
            # the first (TOTAL mod n) hosts get one more
            target=$(( arg / n + (i < arg % n ? 1 : 0) ))
            if ! on_host "${hosts[$i]}" scale "$target" 2>&1 | sed "s/^/[${hosts[$i]}] /"; then
                rc=1
            fi
        done
        exit "$rc"
        ;;
    *)
        usage
        ;;
esac
