#!/usr/bin/env bash
# The managed-mode stand-ins: AWS's durable-execution emulator (`dex-local-runner
# start-server`, PyPI aws-durable-execution-sdk-python-testing 1.4.0) invoking function
# binaries that `cargo lambda watch` (PyPI cargo-lambda 1.9.2) serves, both on 127.0.0.1.
#
#   source scripts/standins/lambda.sh      # start both, export the variables below; they stop
#                                          # when the sourcing shell exits
#   scripts/standins/lambda.sh CMD [ARG..] # run CMD against them, then stop them
#
# Exports DURABLE_EMULATOR_ENDPOINT (the emulator: POST /start-durable-execution, the
# durable-execution control-plane routes), DURABLE_LAMBDA_WATCH_ENDPOINT (the Lambda Invoke
# API of `cargo lambda watch`), dummy credentials and a region. Ports are free ports the OS
# picked. The functions are the workspace's binaries built with the features in
# DURABLE_LAMBDA_FEATURES (default: durable-examples/lambda-selfhosted,durable-tests/lambda-selfhosted): a
# function's name is its binary's name. They are built before watch starts, so no
# invocation waits for a compiler; watch runs them with AWS_ENDPOINT_URL_LAMBDA pointing at
# the emulator, where they send their checkpoints. DURABLE_EMULATOR_SKIP_TIME=1 makes the
# emulator skip timer waits (history keeps the modelled durations).
#
# The first run creates a virtual environment in .cache/standins/ with the versions pinned
# in requirements-lambda.txt; later runs reuse it. Logs: .cache/standins/{dex,watch}-*.log.

_lambda_standin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_lambda_standin_dir/common.sh"

standin_lambda_start() {
    local venv features dex_port watch_port dex_log watch_log dex_pid watch_pid skip_time
    venv="$(standins_venv lambda "$_lambda_standin_dir/requirements-lambda.txt")" || return 1
    features="${DURABLE_LAMBDA_FEATURES:-durable-examples/lambda-selfhosted,durable-tests/lambda-selfhosted}"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-west-2
    export AWS_DEFAULT_REGION=us-west-2
    export AWS_EC2_METADATA_DISABLED=true

    echo "standins: building the function binaries (features $features)" >&2
    (cd "$STANDINS_ROOT" && cargo build --bins --features "$features") || return 1

    dex_port="$(standins_free_port)"
    watch_port="$(standins_free_port)"
    while [[ "$watch_port" == "$dex_port" ]]; do watch_port="$(standins_free_port)"; done
    dex_log="$STANDINS_CACHE/dex-$$.log"
    watch_log="$STANDINS_CACHE/watch-$$.log"

    # `cargo lambda` finds cargo and the workspace from here; the function processes inherit
    # nothing but what --env-var gives them beyond watch's own environment.
    (cd "$STANDINS_ROOT" && exec "$venv/bin/cargo-lambda" lambda watch --ignore-changes --quiet \
        -A 127.0.0.1 -P "$watch_port" --concurrency 8 --features "$features" \
        --env-var "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$dex_port" \
        --env-var "AWS_REGION=us-west-2,AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test" \
        --env-var "AWS_EC2_METADATA_DISABLED=true,RUST_LOG=${DURABLE_LAMBDA_LOG:-info}") >"$watch_log" 2>&1 &
    watch_pid=$!
    standins_on_exit "kill $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null; [[ -n \"\${DURABLE_KEEP_STANDIN_LOGS:-}\" ]] || rm -f '$watch_log'"

    skip_time=--no-skip-time
    [[ -n "${DURABLE_EMULATOR_SKIP_TIME:-}" ]] && skip_time=--skip-time
    "$venv/bin/dex-local-runner" start-server --host 127.0.0.1 --port "$dex_port" \
        --lambda-endpoint "http://127.0.0.1:$watch_port" --store-type memory "$skip_time" \
        --local-runner-endpoint "http://127.0.0.1:$dex_port" --local-runner-region us-west-2 \
        --log-level "${DURABLE_EMULATOR_LOG_LEVEL:-WARNING}" >"$dex_log" 2>&1 &
    dex_pid=$!
    standins_on_exit "kill $dex_pid 2>/dev/null; wait $dex_pid 2>/dev/null; [[ -n \"\${DURABLE_KEEP_STANDIN_LOGS:-}\" ]] || rm -f '$dex_log'"

    standins_wait_tcp "$watch_port" 60 "$watch_pid" "$watch_log" || return 1
    standins_wait_http "http://127.0.0.1:$dex_port/health" 60 "$dex_pid" "$venv/bin/python" || {
        cat "$dex_log" >&2
        return 1
    }
    export DURABLE_EMULATOR_ENDPOINT="http://127.0.0.1:$dex_port"
    export DURABLE_LAMBDA_WATCH_ENDPOINT="http://127.0.0.1:$watch_port"
    export DURABLE_EMULATOR_LOGS="$dex_log:$watch_log"
    echo "standins: dex-local-runner (pid $dex_pid) at $DURABLE_EMULATOR_ENDPOINT, cargo lambda watch (pid $watch_pid) at $DURABLE_LAMBDA_WATCH_ENDPOINT" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 COMMAND [ARG...]   (or: source $0)" >&2
        exit 2
    fi
    standin_lambda_start
    "$@"
else
    standin_lambda_start
fi
