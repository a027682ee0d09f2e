use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::quote;
use syn::{ItemFn, parse_quote};

use super::*;
use crate::validate;

struct Walked {
    /// `method label-or-#ordinal` per site.
    sites: Vec<String>,
    errors: Vec<String>,
    /// The body after the walk, as tokens.
    body: String,
}

fn walk_fn(mut func: ItemFn, lints: bool) -> Walked {
    let contexts = validate::signature(&func.sig).map_err(|e| e.to_string()).unwrap().contexts;
    let krate: Path = parse_quote!(::durable);
    let table = Ident::new("__DURABLE_SITES", Span::mixed_site());
    let analysis = rewrite(&mut func.block, &contexts, &Options { krate: &krate, table: &table, lints });
    Walked {
        sites: analysis
            .sites
            .iter()
            .map(|s| match &s.label {
                Some(l) => format!("{} {}", s.method, l.value()),
                None => format!("{} #{}", s.method, s.ordinal),
            })
            .collect(),
        errors: analysis.errors.iter().map(ToString::to_string).collect(),
        body: func.block.to_token_stream().to_string(),
    }
}

fn walk(body: TokenStream) -> Walked {
    let body = Group::new(Delimiter::Brace, body);
    walk_fn(parse_quote!(async fn f(ctx: DurableContext) -> Result<(), Error> #body), true)
}

fn sites(body: TokenStream) -> Vec<String> {
    let w = walk(body);
    assert_eq!(w.errors, Vec::<String>::new());
    w.sites
}

fn errors(body: TokenStream) -> Vec<String> {
    walk(body).errors
}

/// The first words of each error, enough to tell the rules apart.
fn heads(body: TokenStream) -> Vec<String> {
    errors(body).into_iter().map(|e| e.split(" (or mark").next().unwrap().to_owned()).collect()
}

#[test]
fn labels_and_ordinals_in_source_order() {
    let got = sites(quote! {
        ctx.step("reserve", async |_| Ok(1)).await?;
        ctx.wait(None::<&str>, d).await?;
        let now = ctx.now().await?;
        let name = "dynamic";
        ctx.step(name, async |_| Ok(2)).await?;
        let id = ctx.uuid().await?;
        let n: u64 = ctx.random().await?;
        ctx.step("charge", async |_| Ok(3)).await?;
        ctx.invoke("ship", target, input).await?;
        Ok(())
    });
    assert_eq!(
        got,
        ["step reserve", "wait #0", "now #1", "step #2", "uuid #3", "random #4", "step charge", "invoke ship"]
    );
}

#[test]
fn every_method_of_the_table_is_a_site() {
    let got = sites(quote! {
        ctx.create_callback("cb");
        ctx.wait_for_callback("wcb", submit);
        ctx.map("m", items, f);
        ctx.parallel("p");
        ctx.wait_for_condition("cond", state, check);
        ctx.patched("v2");
        ctx.all("all", futures);
        ctx.all_settled("settled", futures);
        ctx.any("any", futures);
        ctx.race("race", futures);
        ctx.run_in_child_context("child", f);
    });
    assert_eq!(got.len(), methods::METHODS.len() - 6);
}

#[test]
fn the_receiver_is_rewritten_and_nothing_else() {
    let w = walk(quote!(let v = ctx.step::<u32, _, _>("a", async |_| Ok(1)).retry(r).await?;));
    let want = quote!({
        let v = ::durable::__private::at(&ctx, &__DURABLE_SITES[0])
            .step::<u32, _, _>("a", async |_| Ok(1))
            .retry(r)
            .await?;
    });
    assert_eq!(w.body, want.to_string());
}

#[test]
fn a_site_in_a_loop_is_one_site() {
    let got = sites(quote! {
        for item in items {
            ctx.step("item", async |_| Ok(item)).await?;
            ctx.wait(None::<&str>, d).await?;
        }
    });
    assert_eq!(got, ["step item", "wait #0"]);
}

#[test]
fn other_receivers_are_left_alone() {
    let w = walk(quote! {
        self.ctx.step("a", f);
        other.step("b", f);
        (ctx).step("c", f);
        ctx.clone();
        ctx.step_by(2);
        some::ctx.wait("d", x);
        durable::step("e", f);
    });
    assert_eq!(w.sites, Vec::<String>::new());
    assert!(!w.body.contains("__private"), "{}", w.body);
}

#[test]
fn references_to_contexts_work() {
    let got = walk_fn(
        parse_quote!(
            async fn helper(ctx: &DurableContext, n: u32) -> durable::Result<u32> {
                ctx.step("a", f).await
            }
        ),
        true,
    );
    assert_eq!(got.sites, ["step a"]);
    assert!(got.body.contains("at (& ctx , & __DURABLE_SITES [0])"), "{}", got.body);
    let got = walk_fn(
        parse_quote!(
            async fn m(&self, mut c: &mut DurableContext) -> Result<()> {
                c.now()
            }
        ),
        true,
    );
    assert_eq!(got.sites, ["now #0"]);
}

#[test]
fn child_context_closures_know_their_context() {
    let got = sites(quote! {
        ctx.run_in_child_context("child", async |c| {
            c.step("inner", async |_| Ok(1)).await?;
            c.wait("nap", d).await
        }).await?;
        ctx.run_in_child_context("typed", async |c2: DurableContext| c2.now().await).await?;
        ctx.run_in_child_context(None::<&str>, |c3| async move { c3.uuid().await }).await?;
        c.step("not a context out here", f);
    });
    assert_eq!(
        got,
        [
            "run_in_child_context child",
            "step inner",
            "wait nap",
            "run_in_child_context typed",
            "now #0",
            "run_in_child_context #1",
            "uuid #2"
        ]
    );
}

#[test]
fn the_outer_context_stays_known_in_a_child() {
    let got = sites(quote! {
        ctx.run_in_child_context("child", async |c| {
            ctx.step("outer", f).await?;
            c.step("inner", f).await
        }).await?;
    });
    assert_eq!(got, ["run_in_child_context child", "step outer", "step inner"]);
}

#[test]
fn map_and_parallel_branches_get_contexts() {
    let got = sites(quote! {
        ctx.map("m", items, async |c, item| c.step("each", async |_| Ok(item)).await).await?;
        ctx.parallel("p")
            .branch("a", async |b| b.step("x", f).await)
            .branch("b", |b| async move { b.now().await })
            .await?;
        other.parallel("q").branch("c", async |z| z.step("not a site", f).await);
    });
    assert_eq!(got, ["map m", "step each", "parallel p", "step x", "now #0"]);
}

#[test]
fn only_the_first_closure_parameter_is_a_context() {
    let got = sites(quote! {
        ctx.map("m", items, async |c, item| item.step("no", f).await).await?;
    });
    assert_eq!(got, ["map m"]);
}

#[test]
fn rebinding_hides_a_context() {
    let got = sites(quote! {
        let n = items.iter().map(|ctx| ctx.step(1, 2)).count();
        {
            let ctx = Other::new();
            ctx.wait("hidden", d);
        }
        ctx.wait("visible", d).await?;
        match x { Some(ctx) => ctx.now(), None => 0 };
        let c = ctx.clone();
        c.step("alias", f).await?;
        let r = &ctx;
        r.step("ref", f).await?;
        let t: &DurableContext = &self.ctx;
        t.uuid().await?;
        for ctx in others { ctx.wait("loop var", d); }
        if let Some(ctx) = maybe && ctx.ready() { ctx.now(); } else { ctx.wait("else", d).await?; }
        while let Some(ctx) = queue.pop() { ctx.now(); }
        ctx.wait("after", d).await?;
    });
    assert_eq!(got, ["wait visible", "step alias", "step ref", "uuid #0", "wait else", "wait after"]);
}

#[test]
fn duplicate_labels_are_errors_naming_the_first() {
    let errs = errors(quote! {
        ctx.step("charge", f).await?;
        ctx.step("ship", f).await?;
        ctx.run_in_child_context("c", async |c| c.wait("charge", d).await).await?;
    });
    assert_eq!(
        errs,
        ["duplicate durable label `charge` in this function; labels name operations and must be unique (the first \
          `charge` is a `step` call above)"]
    );
}

/// The duplicate-label errors of `body`, as `label: method of the first`.
fn duplicates(body: TokenStream) -> Vec<String> {
    errors(body)
        .iter()
        .map(|e| {
            let label = e.split('`').nth(1).unwrap();
            let first = e.rsplit('`').nth(1).unwrap();
            assert!(e.starts_with("duplicate durable label"), "{e}");
            format!("{label}: {first}")
        })
        .collect()
}

#[test]
fn one_label_in_exclusive_branches_is_accepted() {
    let got = sites(quote! {
        if paid {
            ctx.step("notify", f).await?;
        } else {
            ctx.wait("notify", d).await?;
        }
        if a {
            ctx.step("chain", f).await?;
        } else if b {
            ctx.invoke("chain", target, input).await?;
        } else {
            ctx.step("chain", g).await?;
        }
        let v = match state {
            State::New => ctx.step("settle", f).await?,
            State::Paid if late => ctx.wait("settle", d).await?,
            State::Paid => {
                if urgent { ctx.step("nested", f).await? } else { ctx.step("settle", g).await? }
            }
            _ => ctx.step("nested", g).await?,
        };
        for item in items {
            if item.big { ctx.step("each", f).await?; } else { ctx.step("each", g).await?; }
        }
        ctx.step("after", f).await?;
    });
    assert_eq!(
        got,
        [
            "step notify",
            "wait notify",
            "step chain",
            "invoke chain",
            "step chain",
            "step settle",
            "wait settle",
            "step nested",
            "step settle",
            "step nested",
            "step each",
            "step each",
            "step after"
        ]
    );
}

#[test]
fn exclusive_branches_in_different_child_contexts_are_accepted() {
    let got = sites(quote! {
        match kind {
            Kind::A => ctx.run_in_child_context("a", async |c| c.step("work", f).await).await?,
            Kind::B => ctx.run_in_child_context("b", async |c| c.step("work", g).await).await?,
        }
    });
    assert_eq!(got, ["run_in_child_context a", "step work", "run_in_child_context b", "step work"]);
}

#[test]
fn one_label_on_paths_that_can_both_run_is_an_error() {
    // In sequence.
    assert_eq!(duplicates(quote!(ctx.step("a", f).await?; ctx.wait("a", d).await?;)), ["a: step"]);
    // In a then-block and after the `if`.
    assert_eq!(duplicates(quote!(if c { ctx.step("a", f).await?; } ctx.wait("a", d).await?;)), ["a: step"]);
    // In an `else` and after the `if`, with the then-block's use exclusive with the `else`'s.
    assert_eq!(
        duplicates(quote! {
            if c { ctx.step("a", f).await?; } else { ctx.invoke("a", t, i).await?; }
            ctx.wait("a", d).await?;
        }),
        ["a: step"]
    );
    // In the condition and in the branches it guards.
    assert_eq!(
        duplicates(quote! {
            if ctx.step("a", f).await? { ctx.wait("a", d).await?; } else { ctx.invoke("a", t, i).await?; }
        }),
        ["a: step", "a: step"]
    );
    assert_eq!(
        duplicates(quote! {
            if let Some(x) = ctx.step("a", f).await? { ctx.wait("a", d).await?; }
        }),
        ["a: step"]
    );
    // The condition of an `else if` runs before its own then-block, but never with the
    // outer then-block.
    assert_eq!(
        duplicates(quote! {
            if c { ctx.invoke("a", t, i).await?; } else if ctx.step("a", f).await? { ctx.wait("a", d).await?; }
        }),
        ["a: step"]
    );
    // In a scrutinee and an arm.
    assert_eq!(
        duplicates(quote!(match ctx.step("a", f).await? {
            0 => ctx.wait("a", d).await?,
            _ => {}
        })),
        ["a: step"]
    );
    // Twice in one arm.
    assert_eq!(
        duplicates(quote! {
            match x {
                0 => { ctx.step("a", f).await?; ctx.wait("a", d).await?; }
                _ => ctx.invoke("a", t, i).await?,
            }
        }),
        ["a: step"]
    );
    // A guard runs even when a later arm is taken.
    assert_eq!(
        duplicates(quote! {
            match x {
                Some(_) if ctx.step("a", f).await? => {}
                _ => ctx.wait("a", d).await?,
            }
        }),
        ["a: step"]
    );
    // In a loop body and after the loop.
    assert_eq!(duplicates(quote!(for i in items { ctx.step("a", f).await?; } ctx.wait("a", d).await?;)), ["a: step"]);
    // In two `if`s one after the other.
    assert_eq!(duplicates(quote!(if c { ctx.step("a", f).await?; } if d { ctx.wait("a", d).await?; })), ["a: step"]);
    // In a closure and outside it.
    assert_eq!(
        duplicates(quote! {
            ctx.run_in_child_context("c", async |c| c.step("a", f).await).await?;
            if x { ctx.wait("a", d).await?; } else {}
        }),
        ["a: step"]
    );
}

#[test]
fn a_use_after_a_duplicate_must_be_exclusive_with_it_too() {
    // The `wait` is exclusive with the `step` but not with the reported `invoke`.
    assert_eq!(
        duplicates(quote! {
            match x {
                0 => ctx.step("a", f).await?,
                _ if ctx.invoke("a", t, i).await? => ctx.wait("a", d).await?,
                _ => {}
            }
        }),
        ["a: step", "a: invoke"]
    );
}

#[test]
fn unlabelled_sites_never_clash() {
    let got = sites(quote!(ctx.now(); ctx.now(); ctx.wait(name, d); ctx.wait(name, d);));
    assert_eq!(got, ["now #0", "now #1", "wait #2", "wait #3"]);
}

#[test]
fn durable_calls_inside_a_step_are_errors() {
    let errs = errors(quote! {
        ctx.step("outer", async |_| {
            ctx.wait("w", d).await?;
            let nested = || ctx.now();
            Ok(1)
        }).await?;
        ctx.step("outer2", |_| async move { ctx.uuid().await }).await?;
        ctx.wait_for_callback("cb", async |id, _| ctx.step("submit", f).await).await?;
    });
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs.iter().all(|e| e.starts_with("durable operations cannot run inside a step")));
    assert!(errs[0].contains("this `wait`"), "{}", errs[0]);
    assert!(errs[0].ends_with(
        "move it out of the step, or group durable operations in the #[durable] function with \
         `ctx.run_in_child_context(\"name\", async |ctx| ..)`"
    ));
}

#[test]
fn a_child_context_inside_a_step_is_one_error() {
    let errs = errors(quote! {
        ctx.step("outer", async |_| ctx.run_in_child_context("c", async |c| c.now().await).await).await?;
    });
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn each_lint_fires_in_the_body() {
    let got = heads(quote! {
        let a = SystemTime::now();
        let b = std::time::Instant::now();
        let c = chrono::Utc::now();
        let d = Local::now();
        let e: u64 = rand::random();
        let f = rand::thread_rng();
        let g = rand::rng();
        let h = rng();
        let i = uuid::Uuid::new_v4();
        tokio::time::sleep(d).await;
        std::thread::sleep(d);
        tokio::spawn(fut);
        tokio::task::spawn_local(fut);
        std::thread::spawn(f);
        let j = std::env::var("HOME");
        let k = env::var_os("HOME");
    });
    let kinds: Vec<&str> = got
        .iter()
        .map(|e| {
            let (_, rest) = e.split_once("` ").unwrap();
            rest.split_once(' ').unwrap().0
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "reads", "reads", "reads", "reads", "draws", "draws", "draws", "draws", "makes", "is", "is", "runs",
            "runs", "runs", "reads", "reads"
        ]
    );
    assert!(got[0].starts_with("`SystemTime::now` reads the clock"));
    assert!(got[14].starts_with("`std::env::var` reads the environment"));
    assert!(errors(quote!(let a = SystemTime::now();))[0].ends_with("(or mark the code #[nondeterministic])"));
}

#[test]
fn lints_skip_plain_calls() {
    assert_eq!(
        errors(quote! {
            let a = Vec::new();
            let b = random();
            let c = now();
            let d = Duration::from_secs(1);
            let e = SystemTime::UNIX_EPOCH;
            let f = ctx.now().await?;
            let g = instant.now();
        }),
        Vec::<String>::new()
    );
}

#[test]
fn lints_suggest_the_context_in_scope() {
    let errs = heads(quote! {
        ctx.run_in_child_context("child", async |child| {
            let t = SystemTime::now();
            Ok(())
        }).await?;
        let t = SystemTime::now();
    });
    assert!(errs[0].ends_with("use `child.now().await?`"), "{}", errs[0]);
    assert!(errs[1].ends_with("use `ctx.now().await?`"), "{}", errs[1]);
    let errs = heads(quote! {
        let items = items.iter().map(|ctx| Instant::now());
    });
    assert!(errs[0].ends_with("use `ctx.now().await?`"), "{}", errs[0]);
}

#[test]
fn lints_are_off_in_step_bodies() {
    assert_eq!(
        errors(quote! {
            ctx.step("t", async |_| Ok(SystemTime::now())).await?;
            ctx.step("r", |_| async { Ok(rand::random::<u64>()) }).await?;
            ctx.wait_for_callback("cb", async |id, _| { tokio::spawn(send(id)); Ok(()) }).await?;
            ctx.wait_for_condition("poll", 0, async |s, _| Ok(std::env::var("X").is_ok())).await?;
            self.ctx.step("via a field", async |_| Ok(Uuid::new_v4())).await?;
        }),
        Vec::<String>::new()
    );
}

#[test]
fn lints_are_on_in_child_contexts_and_other_closures() {
    let errs = errors(quote! {
        ctx.run_in_child_context("c", async |c| Ok(Uuid::new_v4())).await?;
        let later = async move { tokio::time::sleep(d).await };
        let f = || std::thread::spawn(work);
    });
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn the_marker_allows_nondeterminism_and_is_removed() {
    let w = walk(quote! {
        #[nondeterministic]
        let started = Instant::now();
        #[nondeterministic]
        {
            let a = SystemTime::now();
            tokio::spawn(fut);
        }
        #[nondeterministic]
        println!("{:?}", SystemTime::now());
        let b = #[nondeterministic] rand::random::<u8>();
        match x {
            #[nondeterministic]
            Some(_) => std::thread::sleep(d),
            None => {}
        }
        ctx.step("s", f).await?;
        let after = Instant::now();
    });
    assert_eq!(w.errors.len(), 1, "{:#?}", w.errors);
    assert!(w.errors[0].starts_with("`Instant::now`"));
    assert!(!w.body.contains("nondeterministic"), "{}", w.body);
    assert_eq!(w.sites, ["step s"]);
}

#[test]
fn the_marker_takes_no_arguments() {
    assert_eq!(errors(quote!(#[nondeterministic(clock)] let t = 1;)), ["#[nondeterministic] takes no arguments"]);
}

#[test]
fn allow_nondeterminism_turns_the_lints_off() {
    let w = walk_fn(
        parse_quote!(
            async fn f(ctx: DurableContext) -> Result<()> {
                let t = SystemTime::now();
                ctx.step("s", f).await?;
                Ok(())
            }
        ),
        false,
    );
    assert_eq!(w.errors, Vec::<String>::new());
    assert_eq!(w.sites, ["step s"]);
}

#[test]
fn lints_and_sites_reach_into_macros() {
    let w = walk(quote! {
        println!("{:?}", SystemTime::now());
        let v = vec![rand::random::<u8>(), 2];
        assert!(Instant::now() > start, "late");
        let (a, b) = futures::join!(ctx.step("a", f), ctx.step("b", f));
        let s = format!("{}", ctx.now().await?);
        let raw = stringify!(ctx.step("c", f));
        let later = env!("HOME");
    });
    // The three calls, and `futures::join!` itself.
    assert_eq!(w.errors.len(), 4, "{:#?}", w.errors);
    assert!(w.errors[3].starts_with("`futures::join!` joins futures"), "{}", w.errors[3]);
    assert_eq!(w.sites, ["step a", "step b", "now #0"]);
    assert!(
        w.body.contains("futures :: join ! (:: durable :: __private :: at (& ctx , & __DURABLE_SITES [0])"),
        "{}",
        w.body
    );
    assert!(w.body.contains("stringify ! (ctx . step (\"c\" , f))"), "{}", w.body);
}

#[test]
fn untouched_macros_keep_their_tokens() {
    let w = walk(quote! {
        tokio::select! { a = x => {}, b = y => {} }
        let v = vec![0u8; 4];
        println!("{}", x);
    });
    assert!(w.body.contains("tokio :: select ! { a = x => { } , b = y => { } }"), "{}", w.body);
    assert!(w.body.contains("vec ! [0u8 ; 4]"), "{}", w.body);
}

#[test]
fn nested_items_are_not_part_of_the_body() {
    let w = walk(quote! {
        fn helper(ctx: DurableContext) { let t = SystemTime::now(); ctx.step("inner", f); }
        ctx.step("outer", f).await?;
    });
    assert_eq!(w.errors, Vec::<String>::new());
    assert_eq!(w.sites, ["step outer"]);
}

#[test]
fn all_errors_are_collected() {
    let errs = errors(quote! {
        let t = SystemTime::now();
        ctx.step("a", f).await?;
        ctx.step("a", f).await?;
        ctx.step("b", async |_| { ctx.wait("w", d).await }).await?;
        let u = Uuid::new_v4();
    });
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn racing_and_joining_macros_are_flagged_where_they_stand() {
    let got = heads(quote! {
        // Statement position, with and without a path, braces or parentheses.
        tokio::select! { a = x => {}, b = y => {} }
        select! { a = x => {}, b = y => {} };
        futures::select_biased! { a = x => {}, b = y => {} }
        tokio::join!(x, y);
        // Expression position.
        let (a, b) = futures::join!(x, y);
        let r = tokio::try_join!(x, y)?;
        let w = tokio::select! { a = x => a, b = y => b };
        // Nested in an async block, a closure and another macro's arguments.
        let fut = async { try_join!(x, y) };
        let f = || join!(x, y);
        println!("{:?}", futures::join!(x, y));
    });
    let shown: Vec<&str> = got.iter().map(|e| e.split('`').nth(1).unwrap()).collect();
    assert_eq!(
        shown,
        [
            "tokio::select!",
            "select!",
            "futures::select_biased!",
            "tokio::join!",
            "futures::join!",
            "tokio::try_join!",
            "tokio::select!",
            "try_join!",
            "join!",
            "futures::join!",
        ]
    );
    assert!(
        got[0].ends_with(
            "use `ctx.race(\"name\", futures).await?`, or `ctx.any(\"name\", futures).await?` for the first success"
        ),
        "{}",
        got[0]
    );
    assert!(got[3].contains("use `ctx.all(\"name\", futures).await?`, or `ctx.all_settled("), "{}", got[3]);
    assert!(got[5].ends_with("use `ctx.all(\"name\", futures).await?`"), "{}", got[5]);
}

#[test]
fn racing_and_joining_calls_are_flagged() {
    let got = heads(quote! {
        let all = futures::future::join_all(futs).await;
        let all = try_join_all(futs).await?;
        let (first, _, rest) = futures::future::select_all(futs).await;
        let ok = select_ok(futs).await?;
        let either = future::select(a, b).await;
        let both = future::join(a, b).await;
        let both = futures::future::try_join(a, b).await?;
        let mut set = FuturesUnordered::new();
        let mut tasks = tokio::task::JoinSet::new();
    });
    let verbs: Vec<&str> = got.iter().map(|e| e.split("` ").nth(1).unwrap().split(' ').next().unwrap()).collect();
    assert_eq!(verbs, ["joins", "joins", "races", "races", "races", "joins", "joins", "yields", "yields"], "{got:#?}");
    assert!(got[7].starts_with("`FuturesUnordered::new` yields futures in the order they complete"));
}

#[test]
fn racing_and_joining_lints_name_the_context_in_scope() {
    let errs = heads(quote! {
        ctx.run_in_child_context("child", async |child| {
            tokio::select! { a = x => {}, b = y => {} }
            Ok(())
        }).await?;
    });
    assert!(errs[0].contains("use `child.race("), "{}", errs[0]);
}

#[test]
fn racing_and_joining_are_allowed_in_steps_and_marked_code() {
    let w = walk(quote! {
        ctx.step("both", async |_| Ok(tokio::join!(x, y))).await?;
        ctx.step("first", async |_| {
            tokio::select! { a = x => {}, b = y => {} }
            Ok(futures::future::join_all(futs).await)
        }).await?;
        #[nondeterministic]
        tokio::select! { a = x => {}, b = y => {} }
        #[nondeterministic]
        let (a, b) = futures::join!(x, y);
        let all = #[nondeterministic] futures::future::join_all(futs);
        #[nondeterministic]
        {
            let set = FuturesUnordered::new();
            try_join!(x, y)?;
        }
    });
    assert_eq!(w.errors, Vec::<String>::new());
    assert!(!w.body.contains("nondeterministic"), "{}", w.body);
    assert_eq!(w.sites, ["step both", "step first"]);
}

#[test]
fn racing_and_joining_lints_are_off_with_allow_nondeterminism() {
    let w = walk_fn(
        parse_quote!(
            async fn f(ctx: DurableContext) -> Result<()> {
                tokio::select! { a = x => {}, b = y => {} }
                let all = futures::future::join_all(futs).await;
                Ok(())
            }
        ),
        false,
    );
    assert_eq!(w.errors, Vec::<String>::new());
}

#[test]
fn other_macros_and_calls_named_alike_are_not_flagged() {
    assert_eq!(
        errors(quote! {
            let j = handle.join();
            let p = paths.join("/");
            let v = select(a, b);
            let w = join(a, b);
            let x = my_select!(a, b);
            let y = tokio::pin!(fut);
            let o = FuturesOrdered::new();
        }),
        Vec::<String>::new()
    );
}
