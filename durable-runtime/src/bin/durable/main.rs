//! `durable`: inspect and drive durable executions through a worker's control plane (the
//! AWS durable-execution routes that `LocalRunner::control_plane` serves on loopback).
//!
//! ```text
//! durable [--endpoint http://127.0.0.1:9323] <command>
//!   list [--function F] [--status S]... [--name N] [--json]
//!   show <arn|name> [--json]
//!   history <arn|name> [--json] [--no-data]
//!   timeline <arn|name>
//!   callback succeed <id> [<json>] [--raw]
//!   callback fail <id> [--type T] [--message M] [--data D]
//!   callback heartbeat <id>
//!   stop <arn|name> [--type T] [--message M]
//!   start <function> [--name N] [--input JSON]
//!   store verify <dir>
//!   store salvage <dir> --to <new dir>
//! ```
//!
//! The `store` commands work on an embedded store's folder directly (not through a
//! control plane), while no process has it open.
//!
//! The endpoint comes from `--endpoint`, else `DURABLE_ENDPOINT`, else
//! `http://127.0.0.1:9323`. An execution can be named by its ARN or, when that is unique,
//! by its name.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use durable_core::model::{ErrorObject, ExecutionStatus, GetDurableExecutionHistoryResponse, Timestamp};
use durable_runtime::client::{Client, ClientError, ListFilter};
use durable_runtime::control_plane::DEFAULT_ENDPOINT;
use durable_runtime::inspect::{Timeline, history_table, human_duration};

#[derive(Debug, Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect and drive durable executions through a worker's control plane",
    after_help = "The endpoint is --endpoint, else $DURABLE_ENDPOINT, else http://127.0.0.1:9323.\n\
                  An execution is named by its ARN or, when unique, by its name."
)]
struct Cli {
    /// The control plane's URL (the worker prints it when it starts).
    #[arg(long, env = "DURABLE_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List executions, newest first.
    List {
        /// Only this function's executions.
        #[arg(long, short)]
        function: Option<String>,
        /// Only executions in this status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED); repeatable.
        #[arg(long, short, value_parser = parse_status)]
        status: Vec<ExecutionStatus>,
        /// Only executions with this name.
        #[arg(long)]
        name: Option<String>,
        /// Print AWS's JSON (`ListDurableExecutionsByFunction`).
        #[arg(long)]
        json: bool,
    },
    /// Show one execution: status, input, result or error, and the callbacks it waits on.
    Show {
        /// The execution's ARN or name.
        execution: String,
        /// Print AWS's JSON (`GetDurableExecution`).
        #[arg(long)]
        json: bool,
    },
    /// The execution's history events.
    History {
        /// The execution's ARN or name.
        execution: String,
        /// Print AWS's JSON (`GetDurableExecutionHistory`, every page).
        #[arg(long)]
        json: bool,
        /// Leave payloads (inputs, results, errors) out.
        #[arg(long)]
        no_data: bool,
    },
    /// A per-operation timeline: start and end offsets, attempts, waits, callbacks.
    Timeline {
        /// The execution's ARN or name.
        execution: String,
    },
    /// Complete, fail or heartbeat a callback.
    #[command(subcommand)]
    Callback(CallbackCommand),
    /// Stop a running execution.
    Stop {
        /// The execution's ARN or name.
        execution: String,
        /// The error type recorded on the stop.
        #[arg(long = "type")]
        error_type: Option<String>,
        /// The error message recorded on the stop.
        #[arg(long)]
        message: Option<String>,
    },
    /// Check or rescue an embedded store's folder (while no process has it open).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Start an execution of a function the worker hosts; prints its ARN.
    Start {
        /// The function's name.
        function: String,
        /// An execution name (makes the start idempotent).
        #[arg(long)]
        name: Option<String>,
        /// The input, as JSON.
        #[arg(long)]
        input: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Check an embedded store without changing it: what it holds, what opening it would
    /// cut off or remove, and any damage (file and offset). Exit status 1 when damaged.
    Verify {
        /// The store's folder (e.g. `.durable/order-example`).
        dir: std::path::PathBuf,
    },
    /// Copy everything readable in a damaged embedded store, up to its first damage, into a
    /// new store; the damaged one is left as it is.
    Salvage {
        /// The damaged store's folder.
        dir: std::path::PathBuf,
        /// A new folder for the copy.
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CallbackCommand {
    /// Complete a callback with a result.
    Succeed {
        /// The callback id.
        id: String,
        /// The result as JSON, e.g. '"approved"' or '{"ok":true}' (default: no result).
        result: Option<String>,
        /// Send the result as it is, even if it is not JSON (for a callback read by a non-JSON
        /// codec: the worker refuses such results unless its service config's
        /// `require_json_callback_results` is off).
        #[arg(long)]
        raw: bool,
    },
    /// Fail a callback.
    Fail {
        /// The callback id.
        id: String,
        /// The error type.
        #[arg(long = "type", default_value = "CallbackRejected")]
        error_type: String,
        /// The error message.
        #[arg(long)]
        message: Option<String>,
        /// Extra error data.
        #[arg(long)]
        data: Option<String>,
    },
    /// Record a heartbeat: the callback's heartbeat timeout starts over.
    Heartbeat {
        /// The callback id.
        id: String,
    },
}

/// `durable store ..`: on the folder, no control plane.
async fn store(command: StoreCommand) -> Result<(), Failure> {
    use durable_core::store::EmbeddedStore;
    match command {
        StoreCommand::Verify { dir } => {
            let report = EmbeddedStore::verify(&dir).map_err(|e| Failure::new(e.to_string()))?;
            print!("{report}");
            if report.is_intact() {
                Ok(())
            } else {
                Err(Failure {
                    message: format!("the store in {} is damaged", dir.display()),
                    hint: Some(format!(
                        "`durable store salvage {} --to <new folder>` copies what is readable",
                        dir.display()
                    )),
                })
            }
        }
        StoreCommand::Salvage { dir, to } => {
            let report = EmbeddedStore::salvage(&dir, &to).await.map_err(|e| Failure::new(e.to_string()))?;
            print!("{report}");
            println!("the copy is in {}; the damaged store is unchanged", to.display());
            Ok(())
        }
    }
}

fn parse_status(s: &str) -> Result<ExecutionStatus, String> {
    ExecutionStatus::parse(&s.to_ascii_uppercase())
        .ok_or_else(|| format!("{s:?} is not one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED"))
}

/// A CLI failure: the message, and a hint for the user.
struct Failure {
    message: String,
    hint: Option<String>,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let hint = match &e {
            ClientError::Unreachable { .. } => Some(
                "start the worker first (e.g. `cargo run --bin approval`), or point --endpoint / DURABLE_ENDPOINT \
                 at the address it printed"
                    .to_owned(),
            ),
            ClientError::Api { code, .. } if code == "ResourceNotFoundException" => {
                Some("`durable list` shows the executions this worker has".to_owned())
            }
            _ => None,
        };
        Failure { message: e.to_string(), hint }
    }
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), hint: None }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            if let Some(hint) = f.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Store(command) = cli.command {
        return store(command).await;
    }
    let client = Client::new(&cli.endpoint)?;
    match cli.command {
        Command::List { function, status, name, json } => {
            let filter = ListFilter { function, statuses: status, name, ..ListFilter::default() };
            let executions = client.list_all(&filter).await?;
            if json {
                let doc = durable_core::model::ListDurableExecutionsResponse {
                    durable_executions: executions,
                    next_marker: None,
                };
                println!("{}", serde_json::to_string_pretty(&doc).expect("plain data"));
            } else {
                print!("{}", list_table(&executions));
            }
        }
        Command::Show { execution, json } => {
            let arn = resolve(&client, &execution).await?;
            let e = client.get(&arn).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e).expect("plain data"));
                return Ok(());
            }
            println!("arn:       {}", e.durable_execution_arn);
            println!("name:      {}", e.durable_execution_name);
            println!("function:  {}", e.function_arn);
            println!("status:    {}", e.status);
            println!("started:   {}", e.start_timestamp);
            if let Some(end) = e.end_timestamp {
                let took = human_duration(end.as_millis() - e.start_timestamp.as_millis());
                println!("ended:     {end} (took {took})");
            }
            if let Some(input) = &e.input_payload {
                println!("input:     {input}");
            }
            if let Some(result) = &e.result {
                println!("result:    {result}");
            }
            if let Some(error) = &e.error {
                println!("error:     {error}");
            }
            if e.status == ExecutionStatus::Running {
                let timeline = Timeline::from_events(&client.history(&arn).await?);
                let pending = timeline.pending_callbacks();
                if !pending.is_empty() {
                    println!("\nwaiting on {} callback(s):", pending.len());
                    for (name, id) in pending {
                        println!("  {}", name.unwrap_or("(unnamed)"));
                        println!("    durable --endpoint {} callback succeed '{id}' '<json>'", client.endpoint());
                    }
                }
            }
        }
        Command::History { execution, json, no_data } => {
            let arn = resolve(&client, &execution).await?;
            let mut events = client.history(&arn).await?;
            if no_data {
                for e in &mut events {
                    e.details.strip_data();
                }
            }
            if json {
                let doc = GetDurableExecutionHistoryResponse { events, next_marker: None };
                println!("{}", serde_json::to_string_pretty(&doc).expect("plain data"));
            } else {
                print!("{}", history_table(&events));
            }
        }
        Command::Timeline { execution } => {
            let arn = resolve(&client, &execution).await?;
            print!("{}", Timeline::from_events(&client.history(&arn).await?).as_of(Timestamp::now()));
        }
        Command::Callback(CallbackCommand::Succeed { id, result, raw }) => {
            if let Some(r) = &result
                && !raw
                && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(r)
            {
                return Err(Failure {
                    message: format!("the result is not JSON ({e}): {r}"),
                    hint: Some(
                        "quote strings as JSON, e.g. '\"approved\"', or pass --raw to send the text as it is"
                            .to_owned(),
                    ),
                });
            }
            client.callback_success(&id, result.as_deref()).await?;
            println!("callback succeeded");
        }
        Command::Callback(CallbackCommand::Fail { id, error_type, message, data }) => {
            let error = ErrorObject { error_data: data, ..ErrorObject::new(error_type, message.unwrap_or_default()) };
            client.callback_failure(&id, &error).await?;
            println!("callback failed");
        }
        Command::Callback(CallbackCommand::Heartbeat { id }) => {
            client.callback_heartbeat(&id).await?;
            println!("heartbeat sent");
        }
        Command::Stop { execution, error_type, message } => {
            let arn = resolve(&client, &execution).await?;
            let error = (error_type.is_some() || message.is_some()).then(|| {
                ErrorObject::new(
                    error_type.unwrap_or_else(|| "Execution.Stopped".to_owned()),
                    message.unwrap_or_else(|| "stopped with the durable CLI".to_owned()),
                )
            });
            let at = client.stop(&arn, error.as_ref()).await?;
            println!("stopped {arn} at {at}");
        }
        Command::Start { function, name, input } => {
            let arn = client.start(&function, name.as_deref(), input.as_deref()).await?;
            println!("{arn}");
        }
        // Handled before a client exists.
        Command::Store(_) => {}
    }
    Ok(())
}

/// An ARN as it is; a name resolved to the one execution that has it.
async fn resolve(client: &Client, execution: &str) -> Result<String, Failure> {
    // ARNs (ours, Lambda's, and the emulator's `<uuid>/<uuid>`) have a `:` or a `/`;
    // execution names have neither.
    if execution.contains(':') || execution.contains('/') {
        return Ok(execution.to_owned());
    }
    let filter = ListFilter { name: Some(execution.to_owned()), ..ListFilter::default() };
    let found = client.list_all(&filter).await?;
    match found.as_slice() {
        [one] => Ok(one.durable_execution_arn.clone()),
        [] => Err(Failure {
            message: format!("no execution is named {execution:?}"),
            hint: Some("`durable list` shows the executions this worker has".to_owned()),
        }),
        many => Err(Failure::new(format!(
            "{} executions are named {execution:?} (of different functions); give the ARN: {}",
            many.len(),
            many.iter().map(|e| e.durable_execution_arn.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn list_table(executions: &[durable_core::model::DurableExecutionSummary]) -> String {
    use std::fmt::Write as _;
    if executions.is_empty() {
        return "(no executions)\n".to_owned();
    }
    let function = |arn: &str| arn.rsplit(":function:").next().unwrap_or(arn).to_owned();
    let name_w = executions.iter().map(|e| e.durable_execution_name.len()).max().unwrap_or(0).max(4);
    let fn_w = executions.iter().map(|e| function(&e.function_arn).len()).max().unwrap_or(0).max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<fn_w$}  {:<9}  {:<24}  {:>9}  arn",
        "name", "function", "status", "started", "took"
    );
    for e in executions {
        let took = e
            .end_timestamp
            .map_or_else(|| "-".to_owned(), |end| human_duration(end.as_millis() - e.start_timestamp.as_millis()));
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<fn_w$}  {:<9}  {:<24}  {:>9}  {}",
            e.durable_execution_name,
            function(&e.function_arn),
            e.status.as_str(),
            e.start_timestamp.to_string(),
            took,
            e.durable_execution_arn
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;
    use durable_core::model::{DurableExecutionSummary, Timestamp};

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["durable", "list", "--status", "running", "-s", "FAILED", "--endpoint", "x:1"])
            .unwrap();
        assert_eq!(cli.endpoint, "x:1");
        let Command::List { status, .. } = cli.command else { panic!("list") };
        assert_eq!(status, [ExecutionStatus::Running, ExecutionStatus::Failed]);
        assert!(Cli::try_parse_from(["durable", "list", "--status", "DONE"]).is_err());
        let cli = Cli::try_parse_from(["durable", "callback", "fail", "ID", "--type", "T", "--message", "M"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Callback(CallbackCommand::Fail { ref error_type, ref message, .. })
                if error_type == "T" && message.as_deref() == Some("M")
        ));
    }

    #[test]
    fn list_table_columns() {
        let e = DurableExecutionSummary {
            durable_execution_arn: "arn:aws:lambda:local:0:function:approve:$LATEST/durable-execution/n1/id".into(),
            durable_execution_name: "n1".into(),
            function_arn: "arn:aws:lambda:local:0:function:approve".into(),
            status: ExecutionStatus::Succeeded,
            start_timestamp: Timestamp::from_millis(0),
            end_timestamp: Some(Timestamp::from_millis(1500)),
        };
        let table = list_table(&[e]);
        let lines: Vec<_> = table.lines().collect();
        assert!(lines[0].starts_with("name  function  status"), "{table}");
        assert!(
            lines[1].starts_with("n1    approve   SUCCEEDED  1970-01-01T00:00:00.000Z     1.500s  arn:"),
            "{table}"
        );
        assert_eq!(list_table(&[]), "(no executions)\n");
    }
}
