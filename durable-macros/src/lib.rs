//! The `#[durable]` attribute of the `durable` crate. Use it as `durable::durable`; this
//! crate has no other public API, and its output names only `::durable::__private` (or the
//! path given with `crate = ..`), which is not public API either.
//!
//! The passes live in their own modules: `args` (attribute arguments), `validate` (the
//! signature), `sites` (the body walk that finds and rewrites call sites, using the table
//! in `methods`), `lints` (nondeterminism) and `expand` (putting it together).
//! Everything works on `proc_macro2` tokens so it can be unit-tested.

#![forbid(unsafe_code)]

mod args;
mod expand;
mod lints;
mod methods;
mod sites;
mod validate;

#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Makes an `async fn` durable: gives every durable call in its body a call site fixed at
/// compile time, and rejects nondeterministic calls.
///
/// ```
/// use std::time::Duration;
///
/// use durable::{DurableContext, durable};
///
/// #[durable]
/// async fn checkout(ctx: DurableContext, order: u64) -> durable::Result<u64> {
///     let reserved = ctx.step("reserve", async |_| Ok(order)).await?;
///     ctx.wait("cool off", Duration::from_secs(60)).await?;
///     let receipt: u64 = ctx.random().await?;
///     Ok(reserved + receipt)
/// }
/// ```
///
/// The function must be an `async fn` (free or a method) with a context parameter (a type
/// whose last path segment is `DurableContext`, by value, `&` or `&mut`) bound to a plain
/// name, and it must return a `Result` (`durable::Result<T>`, `Result<T, E>`...). Anything
/// else is one error pointing at the problem; the function is still emitted unchanged so
/// the rest of the crate keeps compiling.
///
/// # Call sites and operation ids
///
/// A durable call site is a call `ctx.METHOD(..)` where `ctx` is a plain identifier known
/// to be a context and `METHOD` is a durable operation: `step`, `wait`,
/// `run_in_child_context`, `now`, `random`, `uuid`, `create_callback`, `wait_for_callback`,
/// `invoke`, `map`, `parallel`, `wait_for_condition`, `patched`, `all`, `all_settled`,
/// `any`, `race`. The known contexts are the function's context parameter, a `let` that
/// visibly binds one again (`let c = ctx.clone();`, `let c = &ctx;`), and inside the
/// closure of a child context (`run_in_child_context`, `map`, the branches chained after
/// `parallel`) that closure's first parameter:
///
/// ```
/// # use durable::{DurableContext, durable};
/// #[durable]
/// async fn ship(ctx: DurableContext) -> durable::Result<()> {
///     ctx.run_in_child_context("pack", async |c| {
///         c.step("box", async |_| Ok(())).await
///     })
///     .await
/// }
/// ```
///
/// A closure parameter, `let`, `for`, `if let`, `while let` or match arm that rebinds the
/// name hides the context in its scope.
///
/// Each site gets a key from stable inputs only, never from line numbers: the function's
/// path (`module_path!()::name`, or the pinned `name`) and either the call's label (its
/// first argument, when that is a string literal) or, for a call without a literal label,
/// its ordinal among the unlabelled sites of the function in source order. At run time an
/// operation's id hashes the parent context's id, the site key and how many times that site
/// already ran under that parent (see `durable::id`). So labelled operations keep their ids
/// when other code moves, and each loop iteration gets its own id. Calls on anything else
/// (`self.ctx`, a helper without `#[durable]`) still work but get positional ids, which
/// shift when operations are inserted before them. Methods are keyed by module path and
/// method name (a macro cannot see the `impl`'s type): pin `name` to tell apart same-named
/// methods of one module that run in one execution.
///
/// Two sites with the same literal label in one function are a compile error, unless they
/// are mutually exclusive: they sit in different arms of one `if` (its then-block and its
/// `else`, each block of an `else if` chain counting as its own arm) or of one `match`. A
/// labelled site's key is the function and the label, not the method, so such sites share
/// one key and one occurrence count at run time; as only one arm runs in a pass, the
/// label's operations get the ids they would get were it written once. An `if` condition,
/// a `match` scrutinee or a guard is in no arm (it runs before an arm is chosen), and
/// neither closures nor loops keep uses apart, so the label in a then-block and again after
/// the `if`, in a condition and in the block it guards, or twice in one arm is still an
/// error:
///
/// ```
/// # use std::time::Duration;
/// # use durable::{DurableContext, durable};
/// #[durable]
/// async fn remind(ctx: DurableContext, urgent: bool) -> durable::Result<()> {
///     if urgent {
///         ctx.step("remind", async |_| Ok::<_, durable::Error>(())).await?;
///     } else {
///         ctx.wait("remind", Duration::from_secs(3600)).await?;
///     }
///     Ok(())
/// }
/// ```
///
/// Renaming or moving the function changes its path and so every id in it, which breaks
/// executions in flight: pin the name first with `#[durable(name = "...")]`.
///
/// # Nondeterminism lints
///
/// The body re-runs from the top on every invocation and must take the same path each
/// time; only step bodies run once. Outside step closures (in the body, in child contexts
/// and in other closures) these calls are compile errors, each with the replacement:
///
/// | call (any path ending so) | use instead |
/// |---|---|
/// | `SystemTime::now`, `Instant::now`, `Utc::now`, `Local::now` | `ctx.now().await?` |
/// | `rand::random`, `rand::rng`, `rng`, `thread_rng` | `ctx.random().await?` |
/// | `Uuid::new_v4`, `Uuid::now_v7` | `ctx.uuid().await?` |
/// | `tokio::time::sleep`, `time::sleep`, `std::thread::sleep` | `ctx.wait("name", duration).await?` |
/// | `tokio::spawn`, `task::spawn`, `spawn_local`, `std::thread::spawn` | `ctx.run_in_child_context(..)` |
/// | `std::env::var`, `env::var`, `env::var_os` | read it in a step |
/// | `join!`, `join_all`, `future::join` | `ctx.all("name", futures).await?`, `ctx.all_settled(..)` |
/// | `try_join!`, `try_join_all`, `future::try_join` | `ctx.all("name", futures).await?` |
/// | `select!`, `select_biased!`, `select_all`, `select_ok`, `future::select` | `ctx.race("name", futures).await?`, `ctx.any(..)` |
/// | `FuturesUnordered::new`, `JoinSet::new` | `ctx.all(..)` / `ctx.all_settled(..)`, `ctx.race(..)` / `ctx.any(..)` |
///
/// The last four rows race or join futures outside the durable log: the winner, or the
/// order in which the futures complete, is not recorded, so a replay can take a different
/// path. The context's combinators record it.
///
/// ```compile_fail
/// # use durable::{DurableContext, durable};
/// #[durable]
/// async fn stamp(ctx: DurableContext) -> durable::Result<()> {
///     let now = std::time::SystemTime::now(); // error: use `ctx.now().await?`
///     Ok(())
/// }
/// ```
///
/// Paths are matched as written (the macro cannot follow imports): `use rand::random;`
/// then `random()` is not caught. The racing and joining macros are matched by name under
/// any path (`select!`, `tokio::select!`, `futures::select!`), on the macro's path only:
/// their bodies are not parsed. Arguments of macros that read as comma-separated
/// expressions (`format!`, `println!`, `vec!`, `assert!`...) are checked too, and their call
/// sites rewritten. A `FuturesUnordered` built another way (`collect`, `default`) is not
/// caught.
///
/// Step closures are the body passed to `step`, the submitter of `wait_for_callback` and
/// the check of `wait_for_condition`. Durable operations cannot run inside them (the body
/// runs once and only its result is recorded); that is a compile error too. Group them with
/// `run_in_child_context` instead. Inside step closures the lints are off: that is where
/// nondeterminism belongs. Only closures written inline in the call count: a closure bound
/// to a variable first and passed by name is linted like the rest of the body (mark it
/// `#[nondeterministic]`).
///
/// # Opting out
///
/// - `#[nondeterministic]` on a statement, block, match arm or expression inside the body
///   allows nondeterminism within it (the macro removes the marker from its output, so it
///   needs no import and works only inside a `#[durable]` function):
///
///   ```
///   # use durable::{DurableContext, durable};
///   #[durable]
///   async fn report(ctx: DurableContext) -> durable::Result<()> {
///       #[nondeterministic] // only for a log line: the value never steers the function
///       let started = std::time::Instant::now();
///       ctx.step("work", async |_| Ok(())).await?;
///       println!("took {:?}", started.elapsed());
///       Ok(())
///   }
///   ```
///
/// - `#[durable(allow_nondeterminism)]` switches every lint off for the function.
///
/// # Arguments
///
/// - `name = "..."`: pins the function's name in site keys (instead of
///   `module_path!()::fn_name`), so the function can be renamed or moved without breaking
///   executions in flight.
/// - `crate = path` (or `crate = "path"`): where the support code lives when `durable` is
///   re-exported under another name, e.g. `crate = ::my_sdk::durable`. Default `::durable`.
/// - `allow_nondeterminism`: turns the nondeterminism lints off.
///
/// Any other key is an error listing these.
///
/// # What it expands to
///
/// The same function, with a table of its call sites in front of the body and each call
/// site's receiver pointed at its entry:
///
/// ```
/// # use std::time::Duration;
/// # use durable::DurableContext;
/// async fn checkout(ctx: DurableContext, order: u64) -> durable::Result<u64> {
///     const __DURABLE_FN: &::core::primitive::str =
///         ::core::concat!(::core::module_path!(), "::", "checkout");
///     static __DURABLE_SITES: [::durable::__private::Site; 3] = [
///         ::durable::__private::Site::labelled(__DURABLE_FN, "step", "reserve"),
///         ::durable::__private::Site::labelled(__DURABLE_FN, "wait", "cool off"),
///         ::durable::__private::Site::unlabelled(__DURABLE_FN, "random", 0),
///     ];
///     let reserved = ::durable::__private::at(&ctx, &__DURABLE_SITES[0])
///         .step("reserve", async |_| Ok(order))
///         .await?;
///     ::durable::__private::at(&ctx, &__DURABLE_SITES[1])
///         .wait("cool off", Duration::from_secs(60))
///         .await?;
///     let receipt: u64 = ::durable::__private::at(&ctx, &__DURABLE_SITES[2]).random().await?;
///     Ok(reserved + receipt)
/// }
/// ```
///
/// The two items are named `__DURABLE_FN` and `__DURABLE_SITES`: do not use these names
/// in a durable function's body. Type errors in a rewritten call point at the call as you
/// wrote it. A function without durable calls is emitted unchanged.
///
/// To see the output for your own code, install
/// [cargo-expand](https://github.com/dtolnay/cargo-expand) (it works on the stable
/// toolchain) and expand the module:
///
/// ```text
/// cargo install cargo-expand --locked
/// cargo expand --lib path::to::module
/// ```
#[proc_macro_attribute]
pub fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::durable(args.into(), item.into()).into()
}
