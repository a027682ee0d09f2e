#!/usr/bin/env bash
# Self-hosted mode under faults: the `fault-workflow` binary (durable-tests) served by
# `cargo lambda watch` (PyPI cargo-lambda 1.9.2) as a plain Lambda function whose DynamoDB
# endpoint is a `fault-proxy` (durable-tests) in front of moto's DynamoDB; SQS is moto too.
# Everything on 127.0.0.1. The proxy starts without faults: the test sets its rates
# (POST /__faults/config) and reads its counts (GET /__faults/stats).
#
#   source scripts/standins/faults.sh      # start them, export the variables below; they
#                                          # stop when the sourcing shell exits
#   scripts/standins/faults.sh CMD [ARG..] # run CMD against them, then stop them
#
# Exports DURABLE_FAULTS_WATCH_ENDPOINT (watch's Lambda Invoke API), DURABLE_FAULTS_PROXY
# (the proxy, for its admin routes), DURABLE_FAULTS_TABLE (the test creates it),
# DURABLE_FAULTS_QUEUE_URL (a queue created for this run), DURABLE_FAULTS_BODY_LOG (the
# file the function's step bodies append their runs to), plus the DynamoDB and SQS
# stand-ins' variables. A DynamoDB stand-in or an SQS stand-in that runs already
# (AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_SQS set, as in ./scripts/test) is reused.
# The function's SDK tries each request DURABLE_FAULTS_SDK_ATTEMPTS times (default 2:
# AWS_MAX_ATTEMPTS), so faults reach durable rather than being absorbed by the SDK. The
# binaries are built with DURABLE_LAMBDA_FEATURES (default
# durable-tests/lambda-selfhosted); watch runs DURABLE_FAULTS_WATCH_CONCURRENCY of them at
# once (default 2). Logs: .cache/standins/{watch-faults,fault-proxy}-*.log
# (kept with DURABLE_KEEP_STANDIN_LOGS=1).

_faults_standin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_faults_standin_dir/common.sh"

standin_faults_start() {
    local moto_venv lambda_venv features target sqs_port sqs_log sqs_pid proxy_log proxy_pid port_file proxy_port
    local watch_port watch_log watch_pid queue keep
    if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
        # shellcheck source=dynamodb.sh
        source "$_faults_standin_dir/dynamodb.sh" || return 1
    fi
    moto_venv="$(standins_venv moto-dynamodb "$_faults_standin_dir/requirements-dynamodb.txt")" || return 1
    lambda_venv="$(standins_venv lambda "$_faults_standin_dir/requirements-lambda.txt")" || return 1
    features="${DURABLE_LAMBDA_FEATURES:-durable-tests/lambda-selfhosted}"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    keep='[[ -n "${DURABLE_KEEP_STANDIN_LOGS:-}" ]]'

    if [[ -z "${AWS_ENDPOINT_URL_SQS:-}" ]]; then
        # moto's ordinary threaded server (its SQS backend locks; DelaySeconds honoured).
        sqs_port="$(standins_free_port)"
        sqs_log="$STANDINS_CACHE/moto-sqs-faults-$$.log"
        "$moto_venv/bin/python" -m moto.server -H 127.0.0.1 -p "$sqs_port" >"$sqs_log" 2>&1 &
        sqs_pid=$!
        standins_on_exit "kill $sqs_pid 2>/dev/null; wait $sqs_pid 2>/dev/null; $keep || rm -f '$sqs_log'"
        standins_wait_http "http://127.0.0.1:$sqs_port/moto-api/" 30 "$sqs_pid" "$moto_venv/bin/python" || {
            cat "$sqs_log" >&2
            return 1
        }
        export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$sqs_port"
    fi
    queue="$("$moto_venv/bin/python" - "$AWS_ENDPOINT_URL_SQS" "durable-faults-$$" <<'PY'
import sys
import boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
print(sqs.create_queue(QueueName=sys.argv[2])["QueueUrl"])
PY
)" || return 1
    export DURABLE_FAULTS_QUEUE_URL="$queue"
    export DURABLE_FAULTS_TABLE="durable-faults-$$"
    export DURABLE_FAULTS_BODY_LOG="$STANDINS_CACHE/faults-body-$$.jsonl"
    rm -f "$DURABLE_FAULTS_BODY_LOG"
    standins_on_exit "$keep || rm -f '$DURABLE_FAULTS_BODY_LOG'"

    # The whole workspace's binaries, as selfhosted.sh builds them: one feature set, one build.
    echo "standins: building the binaries (fault-proxy, fault-workflow; features $features)" >&2
    (cd "$STANDINS_ROOT" && cargo build --bins --features "$features") || return 1
    target="${CARGO_TARGET_DIR:-$STANDINS_ROOT/target}"

    proxy_log="$STANDINS_CACHE/fault-proxy-$$.log"
    port_file="$STANDINS_CACHE/fault-proxy-$$.port"
    rm -f "$port_file"
    "$target/debug/fault-proxy" --upstream "$AWS_ENDPOINT_URL_DYNAMODB" --port-file "$port_file" \
        --seed "${DURABLE_FAULTS_SEED:-1}" --rates none >"$proxy_log" 2>&1 &
    proxy_pid=$!
    standins_on_exit "kill $proxy_pid 2>/dev/null; wait $proxy_pid 2>/dev/null; rm -f '$port_file'; $keep || rm -f '$proxy_log'"
    for _ in $(seq 1 100); do
        [[ -s "$port_file" ]] && break
        if ! kill -0 "$proxy_pid" 2>/dev/null; then
            echo "standins: fault-proxy exited at start-up; its log:" >&2
            cat "$proxy_log" >&2
            return 1
        fi
        sleep 0.1
    done
    proxy_port="$(cat "$port_file" 2>/dev/null)"
    [[ -n "$proxy_port" ]] || { echo "standins: fault-proxy did not report its port" >&2; return 1; }
    export DURABLE_FAULTS_PROXY="http://127.0.0.1:$proxy_port"

    watch_port="$(standins_free_port)"
    watch_log="$STANDINS_CACHE/watch-faults-$$.log"
    (cd "$STANDINS_ROOT" && exec "$lambda_venv/bin/cargo-lambda" lambda watch --ignore-changes --quiet \
        -A 127.0.0.1 -P "$watch_port" --concurrency "${DURABLE_FAULTS_WATCH_CONCURRENCY:-2}" --features "$features" \
        --env-var "DURABLE_TABLE=$DURABLE_FAULTS_TABLE,DURABLE_QUEUE_URL=$DURABLE_FAULTS_QUEUE_URL,DURABLE_SWEEP_GRACE_SECONDS=1" \
        --env-var "AWS_ENDPOINT_URL_DYNAMODB=$DURABLE_FAULTS_PROXY,AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS" \
        --env-var "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$watch_port,AWS_MAX_ATTEMPTS=${DURABLE_FAULTS_SDK_ATTEMPTS:-2}" \
        --env-var "DURABLE_FAULTS_BODY_LOG=$DURABLE_FAULTS_BODY_LOG" \
        --env-var "AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test" \
        --env-var "AWS_EC2_METADATA_DISABLED=true,RUST_LOG=${DURABLE_LAMBDA_LOG:-info}") >"$watch_log" 2>&1 &
    watch_pid=$!
    standins_on_exit "kill $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null; $keep || rm -f '$watch_log'"
    standins_wait_tcp "$watch_port" 60 "$watch_pid" "$watch_log" || return 1
    export DURABLE_FAULTS_WATCH_ENDPOINT="http://127.0.0.1:$watch_port"
    export DURABLE_FAULTS_LOGS="$watch_log:$proxy_log"
    echo "standins: faults: cargo lambda watch (pid $watch_pid) at $DURABLE_FAULTS_WATCH_ENDPOINT, fault-proxy (pid $proxy_pid) at $DURABLE_FAULTS_PROXY -> $AWS_ENDPOINT_URL_DYNAMODB, table $DURABLE_FAULTS_TABLE" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 COMMAND [ARG...]   (or: source $0)" >&2
        exit 2
    fi
    standin_faults_start
    "$@"
else
    standin_faults_start
fi
