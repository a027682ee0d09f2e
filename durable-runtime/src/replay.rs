//! The replay check as a command line: [`cli`] for a binary of your own that lists your
//! handlers, [`cli_with_args`] when it is one subcommand among others. The check itself is
//! `durable_core::replay` (re-exported by the `durable` crate as `durable::replay`).

use std::io::Read as _;
use std::process::ExitCode;

use durable_core::Handler;
use durable_core::replay::{RecordedExecution, check};

/// A ready-made command line for a replay check, for a binary of your own that lists your
/// handlers:
///
/// ```no_run
/// use durable_core::{DurableContext, Handler, Result, handler};
///
/// async fn order(ctx: DurableContext, id: String) -> Result<String> {
///     ctx.step("charge", async |_| Ok(id.clone())).await
/// }
///
/// fn main() -> std::process::ExitCode {
///     let order = handler(order);
///     durable_runtime::replay::cli(&[("order", &order as &dyn Handler)])
/// }
/// ```
///
/// Usage: `replay-check [--json] <function> <history.json | ->`. Exit status 0 when
/// compatible, 1 when not, 2 on a usage or input error. The arguments are the process's
/// own; [`cli_with_args`] takes them from elsewhere (a subcommand of a larger binary).
pub fn cli(handlers: &[(&str, &dyn Handler)]) -> ExitCode {
    cli_with_args(std::env::args().skip(1), handlers)
}

/// [`cli`] with the arguments given (without the program's name): for a binary that offers
/// the replay check as one of its subcommands, as `cargo run --bin order -- replay-check
/// process-order history.json` does in the examples.
pub fn cli_with_args(args: impl IntoIterator<Item = String>, handlers: &[(&str, &dyn Handler)]) -> ExitCode {
    let names = handlers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let usage = format!("usage: replay-check [--json] <function> <history.json | ->\nfunctions: {names}");
    let mut json = false;
    let mut positional = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            _ => positional.push(arg),
        }
    }
    let [function, path] = positional.as_slice() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let Some((_, handler)) = handlers.iter().find(|(n, _)| n == function) else {
        eprintln!("replay-check: no function named {function:?}\n{usage}");
        return ExitCode::from(2);
    };
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("replay-check: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let recorded = match RecordedExecution::from_json(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replay-check: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = futures::executor::block_on(check(*handler, &recorded));
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report serialises"));
    } else {
        print!("{report}");
    }
    if report.is_compatible() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
