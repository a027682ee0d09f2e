// Included by the build script (`include!`) as well as compiled as `durable_tests::left_out`:
// no inner attributes or doc comments here.

/// A test suite that a build with default features leaves out: its package, the `cargo
/// test` selector that runs it, the feature that builds it, and what it runs against.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut {
    /// The package, as `-p` names it.
    pub package: &'static str,
    /// `--test NAME`, `--bench NAME`, `--bin NAME` (its unit tests) or `--lib`.
    pub target: &'static str,
    /// The feature of `package` that builds it.
    pub feature: &'static str,
    /// What it needs beyond the feature.
    pub needs: &'static str,
}

/// Every suite a plain `cargo test` (no features) does not build, all of which
/// `./scripts/test` runs. `tests/left_out.rs` checks the list against the manifests.
pub const LEFT_OUT: &[LeftOut] = &[
    LeftOut {
        package: "durable-tests",
        target: "--test emulator",
        feature: "standins",
        needs: "AWS's emulator behind cargo lambda watch (scripts/standins/lambda.sh)",
    },
    LeftOut {
        package: "durable-tests",
        target: "--test selfhosted",
        feature: "standins",
        needs: "cargo lambda watch, moto's DynamoDB and SQS (scripts/standins/selfhosted.sh)",
    },
    LeftOut {
        package: "durable-tests",
        target: "--test faults",
        feature: "faults",
        needs: "moto's DynamoDB behind fault-injecting proxies, cargo lambda watch: scripts/fault-run runs it \
                (not ./scripts/test yet, see tests/Cargo.toml)",
    },
    LeftOut {
        package: "durable-core",
        target: "--test dynamodb",
        feature: "dynamodb",
        needs: "moto's DynamoDB (scripts/standins/dynamodb.sh)",
    },
    LeftOut {
        package: "durable-core",
        target: "--bench dynamodb_requests",
        feature: "dynamodb",
        needs: "moto's DynamoDB (scripts/standins/dynamodb.sh)",
    },
    LeftOut {
        package: "durable-runtime",
        target: "--bench runner_requests",
        feature: "dynamodb",
        needs: "moto's DynamoDB (scripts/standins/dynamodb.sh)",
    },
    LeftOut {
        package: "durable-runtime",
        target: "--test aws_sdk",
        feature: "aws-sdk-tests",
        needs: "no stand-in; compiles the AWS SDK",
    },
    LeftOut {
        package: "durable-runtime",
        target: "--lib",
        feature: "lambda-selfhosted",
        needs: "no stand-in; compiles the AWS SDK (the lambda module's tests)",
    },
    LeftOut {
        package: "durable-examples",
        target: "--bin lambda-order",
        feature: "lambda",
        needs: "no stand-in; compiles the AWS SDK",
    },
    LeftOut {
        package: "durable-examples",
        target: "--bin lambda-approval",
        feature: "lambda",
        needs: "no stand-in; compiles the AWS SDK",
    },
];

/// The notice a build without `durable-tests/standins` prints (one line each).
pub fn notice() -> Vec<String> {
    let mut lines = vec![
        "not built without their features, so plain `cargo test` skips these suites; ./scripts/test runs them all \
         (it starts the stand-ins and turns the features on):"
            .to_owned(),
    ];
    for s in LEFT_OUT {
        lines.push(format!("  cargo test -p {} --features {} {}: {}", s.package, s.feature, s.target, s.needs));
    }
    lines
}
