//! The fault-injecting proxy as a program, for processes a test does not control (the
//! self-hosted functions under `cargo lambda watch`): see [`durable_tests::faults::proxy`].
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:PORT [--port 0] [--port-file FILE] [--seed N]
//!             [--rates 5xx=0.05,throttle=0.05,reset=0.03,drop=0.03,delay=0.01] [--delay-ms 2000]
//! ```
//!
//! It listens on 127.0.0.1 (port 0: a free port), prints `fault-proxy listening on
//! http://127.0.0.1:PORT` and writes the port to `--port-file`, then serves until killed.
//! `GET /__faults/stats` reports what it injected; `POST /__faults/config` changes the
//! seed, rates and delay while it runs. `RUST_LOG=debug` logs every fault.

use std::process::ExitCode;

use durable_tests::faults::proxy::{Shared, serve};
use durable_tests::faults::{FaultConfig, FaultRates};

const USAGE: &str = "usage: fault-proxy --upstream http://127.0.0.1:PORT [--port 0] [--port-file FILE] [--seed N] \
                     [--rates 5xx=R,throttle=R,reset=R,drop=R,delay=R] [--delay-ms MS]";

struct Args {
    upstream: String,
    port: u16,
    port_file: Option<String>,
    config: FaultConfig,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut upstream = None;
    let mut port = 0;
    let mut port_file = None;
    let mut config = FaultConfig::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--upstream" => upstream = Some(value()?),
            "--port" => port = value()?.parse().map_err(|_| "--port: not a port".to_owned())?,
            "--port-file" => port_file = Some(value()?),
            "--seed" => config.seed = value()?.parse().map_err(|_| "--seed: not a number".to_owned())?,
            "--rates" => config.rates = FaultRates::parse(&value()?)?,
            "--delay-ms" => config.delay_ms = value()?.parse().map_err(|_| "--delay-ms: not a number".to_owned())?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let upstream = upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?;
    Ok(Args { upstream, port, port_file, config })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fault-proxy: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    if let Some(file) = &args.port_file {
        // Written whole, then renamed: a reader never sees half a port.
        let tmp = format!("{file}.tmp");
        if let Err(e) = std::fs::write(&tmp, port.to_string()).and_then(|()| std::fs::rename(&tmp, file)) {
            eprintln!("fault-proxy: cannot write {file}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "fault-proxy listening on http://127.0.0.1:{port}, forwarding to {} (seed {}, rates {}, delay {} ms)",
        args.upstream, args.config.seed, args.config.rates, args.config.delay_ms
    );
    match serve(listener, Shared::new(&args.upstream, args.config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
