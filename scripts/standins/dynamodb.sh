#!/usr/bin/env bash
# The DynamoDB stand-in: moto 5.2.5 in server mode, single-threaded, on 127.0.0.1.
#
#   source scripts/standins/dynamodb.sh      # start it and export the AWS_* variables below;
#                                            # it stops when the sourcing shell exits
#   scripts/standins/dynamodb.sh CMD [ARG..] # run CMD against it, then stop it
#
# Exports AWS_ENDPOINT_URL_DYNAMODB (http://127.0.0.1:PORT, a free port the OS picked),
# dummy credentials, AWS_REGION and AWS_DEFAULT_REGION. The first run creates a virtual
# environment in .cache/standins/ with the versions pinned in requirements-dynamodb.txt
# (about 25 s); later runs reuse it. The server's log goes to .cache/standins/moto-dynamodb-*.log.
#
# Why single-threaded: moto's DynamoDB backend takes no lock, and its default threaded
# server loses conditional updates under concurrent writers, which would make fencing tests
# lie (see STANDINS.md). One request at a time is still about 3 ms per write.

_dynamodb_standin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_dynamodb_standin_dir/common.sh"

standin_dynamodb_start() {
    local venv log port_file pid port
    venv="$(standins_venv moto-dynamodb "$_dynamodb_standin_dir/requirements-dynamodb.txt")" || return 1
    log="$STANDINS_CACHE/moto-dynamodb-$$.log"
    port_file="$STANDINS_CACHE/moto-dynamodb-$$.port"
    rm -f "$port_file"
    "$venv/bin/python" "$_dynamodb_standin_dir/moto_dynamodb.py" "$port_file" "$$" >"$log" 2>&1 &
    pid=$!
    standins_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f '$port_file' '$log'"
    for _ in $(seq 1 300); do
        [[ -s "$port_file" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "standins: moto exited at start-up; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    port="$(cat "$port_file" 2>/dev/null)"
    if [[ -z "$port" ]]; then
        echo "standins: moto did not report its port within 30 s" >&2
        return 1
    fi
    standins_wait_http "http://127.0.0.1:$port/moto-api/" 30 "$pid" "$venv/bin/python" || {
        cat "$log" >&2
        return 1
    }
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    # Nothing here may reach for the instance metadata service (there is none).
    export AWS_EC2_METADATA_DISABLED=true
    echo "standins: moto DynamoDB (single-threaded, pid $pid) at $AWS_ENDPOINT_URL_DYNAMODB" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Run as a command: start, run the arguments, stop (the EXIT trap).
    set -euo pipefail
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 COMMAND [ARG...]   (or: source $0)" >&2
        exit 2
    fi
    standin_dynamodb_start
    "$@"
else
    standin_dynamodb_start
fi
