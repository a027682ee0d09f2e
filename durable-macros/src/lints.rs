//! The nondeterminism lints: calls and macros that give a different answer on replay,
//! found by path.
//!
//! A durable function re-runs from the top on every invocation and must take the same
//! path each time; only step bodies run once. Paths are matched as written (the macro
//! cannot resolve imports), so the rules match on trailing segments. Macros are only
//! token streams to us: a rule on a macro matches its path and never looks inside.

use syn::visit_mut::{self, VisitMut};
use syn::{Arm, Attribute, Block, Expr, Ident, Item, Local, Path, StmtMacro};

/// What a flagged call does, which decides the suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Clock,
    Random,
    Uuid,
    Sleep,
    Spawn,
    Env,
    /// Waits for every future, in an order that is not recorded.
    Join,
    /// Waits for every future or the first error, in an order that is not recorded.
    TryJoin,
    /// Takes the first future to finish, a winner that is not recorded.
    Select,
    /// A collection that yields futures as they finish (`FuturesUnordered`, `JoinSet`).
    Unordered,
}

/// Where a path is used: called as a function, or invoked as a macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `path(..)`.
    Call,
    /// `path!(..)`.
    Macro,
}

/// How a rule matches a path.
#[derive(Debug, Clone, Copy)]
enum Match {
    /// The path ends with these segments.
    Suffix(&'static [&'static str]),
    /// The path is exactly these segments (a leading `::` is ignored).
    Exact(&'static [&'static str]),
    /// A macro whose name (last segment) is this, under any path: `select!`,
    /// `tokio::select!`, `futures::select!`. The other variants match calls only.
    Macro(&'static str),
}

/// The rules, in one table.
static RULES: &[(Match, Kind)] = &[
    (Match::Suffix(&["SystemTime", "now"]), Kind::Clock),
    (Match::Suffix(&["Instant", "now"]), Kind::Clock),
    (Match::Suffix(&["Utc", "now"]), Kind::Clock),
    (Match::Suffix(&["Local", "now"]), Kind::Clock),
    (Match::Exact(&["rand", "random"]), Kind::Random),
    (Match::Suffix(&["thread_rng"]), Kind::Random),
    (Match::Exact(&["rand", "rng"]), Kind::Random),
    (Match::Exact(&["rng"]), Kind::Random),
    (Match::Suffix(&["Uuid", "new_v4"]), Kind::Uuid),
    (Match::Suffix(&["Uuid", "now_v7"]), Kind::Uuid),
    // `tokio::time::sleep`, `time::sleep`, `std::thread::sleep`, `thread::sleep`.
    (Match::Suffix(&["time", "sleep"]), Kind::Sleep),
    (Match::Suffix(&["thread", "sleep"]), Kind::Sleep),
    // `tokio::spawn`, `tokio::task::spawn`, `task::spawn`, `spawn_local`, `std::thread::spawn`.
    (Match::Exact(&["tokio", "spawn"]), Kind::Spawn),
    (Match::Suffix(&["task", "spawn"]), Kind::Spawn),
    (Match::Suffix(&["spawn_local"]), Kind::Spawn),
    (Match::Suffix(&["thread", "spawn"]), Kind::Spawn),
    // `std::env::var`, `env::var`, `env::var_os`.
    (Match::Suffix(&["env", "var"]), Kind::Env),
    (Match::Suffix(&["env", "var_os"]), Kind::Env),
    // Racing and joining futures outside the durable log: `tokio::select!`,
    // `futures::join!`, `futures::future::join_all`, `tokio::task::JoinSet::new`...
    (Match::Macro("join"), Kind::Join),
    (Match::Macro("try_join"), Kind::TryJoin),
    (Match::Macro("select"), Kind::Select),
    (Match::Macro("select_biased"), Kind::Select),
    (Match::Suffix(&["join_all"]), Kind::Join),
    (Match::Suffix(&["future", "join"]), Kind::Join),
    (Match::Suffix(&["future", "join3"]), Kind::Join),
    (Match::Suffix(&["future", "join4"]), Kind::Join),
    (Match::Suffix(&["future", "join5"]), Kind::Join),
    (Match::Suffix(&["try_join_all"]), Kind::TryJoin),
    (Match::Suffix(&["future", "try_join"]), Kind::TryJoin),
    (Match::Suffix(&["future", "try_join3"]), Kind::TryJoin),
    (Match::Suffix(&["future", "try_join4"]), Kind::TryJoin),
    (Match::Suffix(&["future", "try_join5"]), Kind::TryJoin),
    (Match::Suffix(&["select_all"]), Kind::Select),
    (Match::Suffix(&["select_ok"]), Kind::Select),
    (Match::Suffix(&["future", "select"]), Kind::Select),
    (Match::Suffix(&["future", "try_select"]), Kind::Select),
    (Match::Suffix(&["FuturesUnordered", "new"]), Kind::Unordered),
    (Match::Suffix(&["JoinSet", "new"]), Kind::Unordered),
];

/// The kind of nondeterminism a call (or macro) of `path` has, if it is one the lints know.
pub(crate) fn classify(path: &Path, form: Form) -> Option<Kind> {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    RULES.iter().find_map(|(m, kind)| {
        let hit = match (m, form) {
            (Match::Suffix(tail), Form::Call) => segments.len() >= tail.len() && segments.ends_with(&owned(tail)),
            (Match::Exact(all), Form::Call) => segments == owned(all),
            (Match::Macro(name), Form::Macro) => segments.last().is_some_and(|last| last == name),
            _ => false,
        };
        hit.then_some(*kind)
    })
}

fn owned(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// The lint error for a call (or macro) of `path`, suggesting a replacement on the
/// context `ctx`; spanned on the path.
pub(crate) fn check(path: &Path, form: Form, ctx: &Ident) -> Option<syn::Error> {
    let kind = classify(path, form)?;
    let shown = match form {
        Form::Call => render(path),
        Form::Macro => format!("{}!", render(path)),
    };
    let message = match kind {
        Kind::Clock => format!(
            "`{shown}` reads the clock, which differs on replay in a #[durable] function; use `{ctx}.now().await?`"
        ),
        Kind::Random => format!(
            "`{shown}` draws a random value, which differs on replay in a #[durable] function; use \
             `{ctx}.random().await?`"
        ),
        Kind::Uuid => format!(
            "`{shown}` makes a new uuid, which differs on replay in a #[durable] function; use `{ctx}.uuid().await?`"
        ),
        Kind::Sleep => format!(
            "`{shown}` is not durable: a #[durable] function may be suspended and replayed, and the sleep starts \
             over; use `{ctx}.wait(\"name\", duration).await?`"
        ),
        Kind::Spawn => format!(
            "`{shown}` runs work outside the execution of a #[durable] function, so it is neither recorded nor \
             replayed; concurrency goes through durable operations: use `{ctx}.run_in_child_context(..)`"
        ),
        Kind::Env => format!(
            "`{shown}` reads the environment, which may differ on replay in a #[durable] function; read it inside \
             a step: `{ctx}.step(\"read config\", async |_| ..)`"
        ),
        Kind::Join => format!(
            "`{shown}` joins futures without recording the order they complete in, so a replay of a #[durable] \
             function can take a different path; use `{ctx}.all(\"name\", futures).await?`, or \
             `{ctx}.all_settled(\"name\", futures).await?` to keep every outcome"
        ),
        Kind::TryJoin => format!(
            "`{shown}` joins futures without recording the order they complete or fail in, so a replay of a \
             #[durable] function can take a different path; use `{ctx}.all(\"name\", futures).await?`"
        ),
        Kind::Select => format!(
            "`{shown}` races futures without recording the winner, so a replay of a #[durable] function can take \
             a different path; use `{ctx}.race(\"name\", futures).await?`, or `{ctx}.any(\"name\", futures).await?` \
             for the first success"
        ),
        Kind::Unordered => format!(
            "`{shown}` yields futures in the order they complete, which is not recorded, so a replay of a \
             #[durable] function can take a different path; use `{ctx}.all(\"name\", futures).await?` or \
             `{ctx}.all_settled(..)` to wait for every one, `{ctx}.race(..)` or `{ctx}.any(..)` for the first"
        ),
    };
    Some(syn::Error::new_spanned(path, format!("{message} (or mark the code #[nondeterministic])")))
}

/// The path as the user wrote it, without generic arguments: `std::time::SystemTime::now`.
fn render(path: &Path) -> String {
    let body = path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::");
    if path.leading_colon.is_some() { format!("::{body}") } else { body }
}

/// The name of the opt-out marker attribute.
pub(crate) const MARKER: &str = "nondeterministic";

/// Removes the `#[nondeterministic]` markers from `attrs`; reports whether there was one,
/// and an error for a marker with arguments.
pub(crate) fn take_marker(attrs: &mut Vec<Attribute>) -> (bool, Option<syn::Error>) {
    let mut found = false;
    let mut error = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident(MARKER) {
            return true;
        }
        found = true;
        if let Err(e) = attr.meta.require_path_only() {
            error = Some(syn::Error::new(e.span(), "#[nondeterministic] takes no arguments"));
        }
        false
    });
    (found, error)
}

/// Removes every `#[nondeterministic]` marker from a body, for the fallback output: the
/// marker is not a real attribute, and leaving it would add a "cannot find attribute"
/// error to the real one.
pub(crate) fn strip_markers(block: &mut Block) {
    struct Strip;
    impl VisitMut for Strip {
        fn visit_expr_mut(&mut self, expr: &mut Expr) {
            if let Some(attrs) = expr_attrs_mut(expr) {
                take_marker(attrs);
            }
            visit_mut::visit_expr_mut(self, expr);
        }
        fn visit_local_mut(&mut self, local: &mut Local) {
            take_marker(&mut local.attrs);
            visit_mut::visit_local_mut(self, local);
        }
        fn visit_stmt_macro_mut(&mut self, mac: &mut StmtMacro) {
            take_marker(&mut mac.attrs);
            visit_mut::visit_stmt_macro_mut(self, mac);
        }
        fn visit_arm_mut(&mut self, arm: &mut Arm) {
            take_marker(&mut arm.attrs);
            visit_mut::visit_arm_mut(self, arm);
        }
        fn visit_item_mut(&mut self, _: &mut Item) {}
    }
    Strip.visit_block_mut(block);
}

/// The attributes of an expression, for the expressions that can carry them.
pub(crate) fn expr_attrs_mut(expr: &mut Expr) -> Option<&mut Vec<Attribute>> {
    Some(match expr {
        Expr::Array(e) => &mut e.attrs,
        Expr::Assign(e) => &mut e.attrs,
        Expr::Async(e) => &mut e.attrs,
        Expr::Await(e) => &mut e.attrs,
        Expr::Binary(e) => &mut e.attrs,
        Expr::Block(e) => &mut e.attrs,
        Expr::Break(e) => &mut e.attrs,
        Expr::Call(e) => &mut e.attrs,
        Expr::Cast(e) => &mut e.attrs,
        Expr::Closure(e) => &mut e.attrs,
        Expr::Const(e) => &mut e.attrs,
        Expr::Continue(e) => &mut e.attrs,
        Expr::Field(e) => &mut e.attrs,
        Expr::ForLoop(e) => &mut e.attrs,
        Expr::Group(e) => &mut e.attrs,
        Expr::If(e) => &mut e.attrs,
        Expr::Index(e) => &mut e.attrs,
        Expr::Infer(e) => &mut e.attrs,
        Expr::Let(e) => &mut e.attrs,
        Expr::Lit(e) => &mut e.attrs,
        Expr::Loop(e) => &mut e.attrs,
        Expr::Macro(e) => &mut e.attrs,
        Expr::Match(e) => &mut e.attrs,
        Expr::MethodCall(e) => &mut e.attrs,
        Expr::Paren(e) => &mut e.attrs,
        Expr::Path(e) => &mut e.attrs,
        Expr::Range(e) => &mut e.attrs,
        Expr::RawAddr(e) => &mut e.attrs,
        Expr::Reference(e) => &mut e.attrs,
        Expr::Repeat(e) => &mut e.attrs,
        Expr::Return(e) => &mut e.attrs,
        Expr::Struct(e) => &mut e.attrs,
        Expr::Try(e) => &mut e.attrs,
        Expr::TryBlock(e) => &mut e.attrs,
        Expr::Tuple(e) => &mut e.attrs,
        Expr::Unary(e) => &mut e.attrs,
        Expr::Unsafe(e) => &mut e.attrs,
        Expr::While(e) => &mut e.attrs,
        Expr::Yield(e) => &mut e.attrs,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn classifies_the_table() {
        let cases: &[(&str, Option<Kind>)] = &[
            ("SystemTime::now", Some(Kind::Clock)),
            ("std::time::SystemTime::now", Some(Kind::Clock)),
            ("::std::time::Instant::now", Some(Kind::Clock)),
            ("Instant::now", Some(Kind::Clock)),
            ("chrono::Utc::now", Some(Kind::Clock)),
            ("Local::now", Some(Kind::Clock)),
            ("Instant::elapsed", None),
            ("now", None),
            ("rand::random", Some(Kind::Random)),
            ("::rand::random", Some(Kind::Random)),
            ("random", None),
            ("my::rand::random", None),
            ("rand::thread_rng", Some(Kind::Random)),
            ("thread_rng", Some(Kind::Random)),
            ("rand::rng", Some(Kind::Random)),
            ("rng", Some(Kind::Random)),
            ("Uuid::new_v4", Some(Kind::Uuid)),
            ("uuid::Uuid::new_v4", Some(Kind::Uuid)),
            ("Uuid::now_v7", Some(Kind::Uuid)),
            ("Uuid::nil", None),
            ("tokio::time::sleep", Some(Kind::Sleep)),
            ("time::sleep", Some(Kind::Sleep)),
            ("std::thread::sleep", Some(Kind::Sleep)),
            ("thread::sleep", Some(Kind::Sleep)),
            ("sleep", None),
            ("tokio::spawn", Some(Kind::Spawn)),
            ("tokio::task::spawn", Some(Kind::Spawn)),
            ("task::spawn", Some(Kind::Spawn)),
            ("spawn_local", Some(Kind::Spawn)),
            ("tokio::task::spawn_local", Some(Kind::Spawn)),
            ("std::thread::spawn", Some(Kind::Spawn)),
            ("thread::spawn", Some(Kind::Spawn)),
            ("spawn", None),
            ("std::env::var", Some(Kind::Env)),
            ("env::var", Some(Kind::Env)),
            ("env::var_os", Some(Kind::Env)),
            ("std::env::args", None),
            ("Vec::new", None),
            ("futures::future::join_all", Some(Kind::Join)),
            ("join_all", Some(Kind::Join)),
            ("future::join", Some(Kind::Join)),
            ("futures::future::join3", Some(Kind::Join)),
            ("join", None),
            ("thread::join", None),
            ("try_join_all", Some(Kind::TryJoin)),
            ("futures::future::try_join", Some(Kind::TryJoin)),
            ("try_join", None),
            ("futures::future::select_all", Some(Kind::Select)),
            ("select_all", Some(Kind::Select)),
            ("select_ok", Some(Kind::Select)),
            ("future::select", Some(Kind::Select)),
            ("futures::future::try_select", Some(Kind::Select)),
            ("select", None),
            ("tokio::select", None),
            ("FuturesUnordered::new", Some(Kind::Unordered)),
            ("futures::stream::FuturesUnordered::new", Some(Kind::Unordered)),
            ("tokio::task::JoinSet::new", Some(Kind::Unordered)),
            ("JoinSet::spawn", None),
            ("FuturesOrdered::new", None),
        ];
        for (path, want) in cases {
            let parsed: Path = syn::parse_str(path).unwrap();
            assert_eq!(classify(&parsed, Form::Call), *want, "{path}");
        }
    }

    #[test]
    fn classifies_macros_by_name_under_any_path() {
        let cases: &[(&str, Option<Kind>)] = &[
            ("select", Some(Kind::Select)),
            ("tokio::select", Some(Kind::Select)),
            ("futures::select", Some(Kind::Select)),
            ("::futures::select_biased", Some(Kind::Select)),
            ("join", Some(Kind::Join)),
            ("tokio::join", Some(Kind::Join)),
            ("futures::join", Some(Kind::Join)),
            ("try_join", Some(Kind::TryJoin)),
            ("tokio::try_join", Some(Kind::TryJoin)),
            ("futures::try_join", Some(Kind::TryJoin)),
            ("println", None),
            ("vec", None),
            ("join_all", None),
            ("tokio::pin", None),
        ];
        for (path, want) in cases {
            let parsed: Path = syn::parse_str(path).unwrap();
            assert_eq!(classify(&parsed, Form::Macro), *want, "{path}!");
        }
        // Call rules do not match macros, nor macro rules calls.
        assert_eq!(classify(&parse_quote!(SystemTime::now), Form::Macro), None);
        assert_eq!(classify(&parse_quote!(join_all), Form::Macro), None);
    }

    #[test]
    fn generic_arguments_do_not_hide_a_call() {
        assert_eq!(classify(&parse_quote!(rand::random::<u64>), Form::Call), Some(Kind::Random));
    }

    fn message(path: &Path, ctx: &str) -> String {
        message_of(path, Form::Call, ctx)
    }

    fn message_of(path: &Path, form: Form, ctx: &str) -> String {
        check(path, form, &Ident::new(ctx, proc_macro2::Span::call_site())).unwrap().to_string()
    }

    #[test]
    fn messages_name_the_path_and_the_context() {
        let suffix = " (or mark the code #[nondeterministic])";
        let cases: [(Path, &str, String); 6] = [
            (
                parse_quote!(std::time::SystemTime::now),
                "ctx",
                "`std::time::SystemTime::now` reads the clock, which differs on replay in a #[durable] function; use \
                 `ctx.now().await?`"
                    .to_owned(),
            ),
            (
                parse_quote!(rand::random),
                "c",
                "`rand::random` draws a random value, which differs on replay in a #[durable] function; use \
                 `c.random().await?`"
                    .to_owned(),
            ),
            (
                parse_quote!(Uuid::new_v4),
                "durable",
                "`Uuid::new_v4` makes a new uuid, which differs on replay in a #[durable] function; use \
                 `durable.uuid().await?`"
                    .to_owned(),
            ),
            (
                parse_quote!(::tokio::time::sleep),
                "ctx",
                "`::tokio::time::sleep` is not durable: a #[durable] function may be suspended and replayed, and the \
                 sleep starts over; use `ctx.wait(\"name\", duration).await?`"
                    .to_owned(),
            ),
            (
                parse_quote!(tokio::spawn),
                "ctx",
                "`tokio::spawn` runs work outside the execution of a #[durable] function, so it is neither recorded \
                 nor replayed; concurrency goes through durable operations: use `ctx.run_in_child_context(..)`"
                    .to_owned(),
            ),
            (
                parse_quote!(env::var),
                "ctx",
                "`env::var` reads the environment, which may differ on replay in a #[durable] function; read it \
                 inside a step: `ctx.step(\"read config\", async |_| ..)`"
                    .to_owned(),
            ),
        ];
        for (path, ctx, want) in cases {
            let got = message(&path, ctx);
            assert_eq!(got, format!("{want}{suffix}"));
            assert!(!got.ends_with('.'));
            assert!(got.contains("#[durable]"));
        }
    }

    #[test]
    fn concurrency_messages_say_why_and_name_the_durable_combinator() {
        let suffix = " (or mark the code #[nondeterministic])";
        let cases: [(Path, Form, &str, &str); 5] = [
            (
                parse_quote!(tokio::select),
                Form::Macro,
                "c",
                "`tokio::select!` races futures without recording the winner, so a replay of a #[durable] function \
                 can take a different path; use `c.race(\"name\", futures).await?`, or `c.any(\"name\", \
                 futures).await?` for the first success",
            ),
            (
                parse_quote!(join),
                Form::Macro,
                "ctx",
                "`join!` joins futures without recording the order they complete in, so a replay of a #[durable] \
                 function can take a different path; use `ctx.all(\"name\", futures).await?`, or \
                 `ctx.all_settled(\"name\", futures).await?` to keep every outcome",
            ),
            (
                parse_quote!(futures::future::try_join_all),
                Form::Call,
                "ctx",
                "`futures::future::try_join_all` joins futures without recording the order they complete or fail \
                 in, so a replay of a #[durable] function can take a different path; use `ctx.all(\"name\", \
                 futures).await?`",
            ),
            (
                parse_quote!(future::select),
                Form::Call,
                "ctx",
                "`future::select` races futures without recording the winner, so a replay of a #[durable] function \
                 can take a different path; use `ctx.race(\"name\", futures).await?`, or `ctx.any(\"name\", \
                 futures).await?` for the first success",
            ),
            (
                parse_quote!(JoinSet::new),
                Form::Call,
                "ctx",
                "`JoinSet::new` yields futures in the order they complete, which is not recorded, so a replay of a \
                 #[durable] function can take a different path; use `ctx.all(\"name\", futures).await?` or \
                 `ctx.all_settled(..)` to wait for every one, `ctx.race(..)` or `ctx.any(..)` for the first",
            ),
        ];
        for (path, form, ctx, want) in cases {
            let got = message_of(&path, form, ctx);
            assert_eq!(got, format!("{want}{suffix}"));
            assert!(got.contains("#[durable]"));
        }
    }

    #[test]
    fn markers_are_taken() {
        let mut attrs: Vec<Attribute> = vec![parse_quote!(#[allow(unused)]), parse_quote!(#[nondeterministic])];
        assert!(take_marker(&mut attrs).0);
        assert_eq!(attrs.len(), 1);
        assert!(!take_marker(&mut attrs).0);
        let mut attrs: Vec<Attribute> = vec![parse_quote!(#[nondeterministic(clock)])];
        let (found, error) = take_marker(&mut attrs);
        assert!(found);
        assert_eq!(error.unwrap().to_string(), "#[nondeterministic] takes no arguments");
    }
}
