#!/usr/bin/env bash
# Self-hosted mode's stand-ins: the function binaries served by `cargo lambda watch` (PyPI
# cargo-lambda 1.9.2) as plain Lambda functions journaling to DynamoDB, with moto 5.2.5 for
# DynamoDB (single-threaded, scripts/standins/dynamodb.sh) and for SQS (a second, ordinary
# threaded moto: a long SQS poll must not block DynamoDB's one thread), all on 127.0.0.1.
#
#   source scripts/standins/selfhosted.sh      # start them, export the variables below; they
#                                              # stop when the sourcing shell exits
#   scripts/standins/selfhosted.sh CMD [ARG..] # run CMD against them, then stop them
#
# Exports DURABLE_SELFHOSTED_WATCH_ENDPOINT (the Lambda Invoke API of watch),
# DURABLE_SELFHOSTED_TABLE (a table name for this run, which the functions get as
# DURABLE_TABLE; the test creates it, or run `dynamodb-setup`. Not exported as DURABLE_TABLE:
# that would configure self-hosted mode in every test process, whose tests of a function
# without a table must see none),
# DURABLE_QUEUE_URL (a queue created for this run), AWS_ENDPOINT_URL_SQS,
# AWS_ENDPOINT_URL_DYNAMODB, dummy credentials and a region. A DynamoDB stand-in that runs
# already (AWS_ENDPOINT_URL_DYNAMODB set, as in ./scripts/test) is reused. The functions get
# the same table, queue and endpoints in their environment, AWS_ENDPOINT_URL_LAMBDA pointing
# at watch itself (chained invokes), and a sweep grace of 1 s (DURABLE_SWEEP_GRACE_SECONDS)
# so the test's sweep need not wait 10 s. The binaries are built with the features in
# DURABLE_LAMBDA_FEATURES (default: durable-examples/lambda-selfhosted,durable-tests/lambda-selfhosted, as
# lambda.sh builds them, so ./scripts/test reuses that build). Logs:
# .cache/standins/{watch-selfhosted,moto-sqs}-*.log.

_selfhosted_standin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_selfhosted_standin_dir/common.sh"

standin_selfhosted_start() {
    local moto_venv lambda_venv features sqs_port sqs_log sqs_pid watch_port watch_log watch_pid queue
    if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
        # shellcheck source=dynamodb.sh
        source "$_selfhosted_standin_dir/dynamodb.sh" || return 1
    fi
    moto_venv="$(standins_venv moto-dynamodb "$_selfhosted_standin_dir/requirements-dynamodb.txt")" || return 1
    lambda_venv="$(standins_venv lambda "$_selfhosted_standin_dir/requirements-lambda.txt")" || return 1
    features="${DURABLE_LAMBDA_FEATURES:-durable-examples/lambda-selfhosted,durable-tests/lambda-selfhosted}"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true

    # SQS: moto's ordinary threaded server (its SQS backend locks; DelaySeconds honoured).
    sqs_port="$(standins_free_port)"
    sqs_log="$STANDINS_CACHE/moto-sqs-$$.log"
    "$moto_venv/bin/python" -m moto.server -H 127.0.0.1 -p "$sqs_port" >"$sqs_log" 2>&1 &
    sqs_pid=$!
    standins_on_exit "kill $sqs_pid 2>/dev/null; wait $sqs_pid 2>/dev/null; [[ -n \"\${DURABLE_KEEP_STANDIN_LOGS:-}\" ]] || rm -f '$sqs_log'"
    standins_wait_http "http://127.0.0.1:$sqs_port/moto-api/" 30 "$sqs_pid" "$moto_venv/bin/python" || {
        cat "$sqs_log" >&2
        return 1
    }
    export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$sqs_port"
    queue="$("$moto_venv/bin/python" - "$AWS_ENDPOINT_URL_SQS" "durable-wake-$$" <<'PY'
import sys
import boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
print(sqs.create_queue(QueueName=sys.argv[2])["QueueUrl"])
PY
)" || return 1
    export DURABLE_QUEUE_URL="$queue"
    export DURABLE_SELFHOSTED_TABLE="durable-selfhosted-$$"

    echo "standins: building the function binaries (features $features)" >&2
    (cd "$STANDINS_ROOT" && cargo build --bins --features "$features") || return 1

    watch_port="$(standins_free_port)"
    while [[ "$watch_port" == "$sqs_port" ]]; do watch_port="$(standins_free_port)"; done
    watch_log="$STANDINS_CACHE/watch-selfhosted-$$.log"
    (cd "$STANDINS_ROOT" && exec "$lambda_venv/bin/cargo-lambda" lambda watch --ignore-changes --quiet \
        -A 127.0.0.1 -P "$watch_port" --concurrency 2 --features "$features" \
        --env-var "DURABLE_TABLE=$DURABLE_SELFHOSTED_TABLE,DURABLE_QUEUE_URL=$DURABLE_QUEUE_URL,DURABLE_SWEEP_GRACE_SECONDS=1" \
        --env-var "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB,AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS" \
        --env-var "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$watch_port" \
        --env-var "AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test" \
        --env-var "AWS_EC2_METADATA_DISABLED=true,RUST_LOG=${DURABLE_LAMBDA_LOG:-info}") >"$watch_log" 2>&1 &
    watch_pid=$!
    standins_on_exit "kill $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null; [[ -n \"\${DURABLE_KEEP_STANDIN_LOGS:-}\" ]] || rm -f '$watch_log'"
    standins_wait_tcp "$watch_port" 60 "$watch_pid" "$watch_log" || return 1
    export DURABLE_SELFHOSTED_WATCH_ENDPOINT="http://127.0.0.1:$watch_port"
    export DURABLE_SELFHOSTED_LOGS="$watch_log:$sqs_log"
    echo "standins: self-hosted: cargo lambda watch (pid $watch_pid) at $DURABLE_SELFHOSTED_WATCH_ENDPOINT, moto SQS (pid $sqs_pid) at $AWS_ENDPOINT_URL_SQS, DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB, table $DURABLE_SELFHOSTED_TABLE" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 COMMAND [ARG...]   (or: source $0)" >&2
        exit 2
    fi
    standin_selfhosted_start
    "$@"
else
    standin_selfhosted_start
fi
