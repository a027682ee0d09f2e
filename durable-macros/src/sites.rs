//! The body pass: finds the durable call sites, rewrites their receivers, and runs the
//! nondeterminism lints, in one walk that tracks which names are contexts and whether
//! the code is inside a step closure.
//!
//! A durable call site is `RECV.METHOD(args)` where `RECV` is a plain identifier known to
//! be a context and `METHOD` is in [`crate::methods::METHODS`]. Known contexts are the
//! function's context parameters and, inside a closure whose first parameter the table
//! says is a context, that parameter. A closure parameter or a `let` that rebinds a known
//! name hides it (unless the `let` visibly binds a context again, as in
//! `let ctx = ctx.clone();`).
//!
//! The walk also tracks the branch path (which arm of which enclosing `if`/`match`), so
//! that one label may stand in mutually exclusive arms: their sites share a key, and only
//! one of them runs in a pass.

use std::collections::HashMap;

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens as _, quote};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Arm, Block, Expr, ExprCall, ExprClosure, ExprForLoop, ExprIf, ExprMatch, ExprMethodCall, ExprWhile, Ident, Item,
    Lit, Local, Macro, Pat, PatIdent, Path, Stmt, Token,
};

use crate::lints;
use crate::methods::{self, ContextClosures, Method};
use crate::validate::{binding, is_context};

/// One call site, in source order; its index is its slot in the site table.
#[derive(Debug, Clone)]
pub(crate) struct SiteEntry {
    /// The durable method called.
    pub(crate) method: &'static str,
    /// The literal label, if the call has one.
    pub(crate) label: Option<syn::LitStr>,
    /// The ordinal among the unlabelled sites (0 for labelled ones).
    pub(crate) ordinal: u32,
}

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    /// The call sites, in source order.
    pub(crate) sites: Vec<SiteEntry>,
    /// Every label, lint and marker error, in source order.
    pub(crate) errors: Vec<syn::Error>,
}

/// How to rewrite.
pub(crate) struct Options<'a> {
    /// The path of the crate whose `__private` module the output names.
    pub(crate) krate: &'a Path,
    /// The name of the site table.
    pub(crate) table: &'a Ident,
    /// Whether the nondeterminism lints run (off with `allow_nondeterminism`).
    pub(crate) lints: bool,
}

/// Walks a durable function's body: rewrites every call site's receiver to
/// `krate::__private::at(&recv, &table[i])`, strips `#[nondeterministic]` markers, and
/// reports the sites and every error found.
pub(crate) fn rewrite(block: &mut Block, contexts: &[Ident], options: &Options<'_>) -> Analysis {
    let mut walker = Walker {
        options,
        fallback_ctx: contexts.first().cloned().unwrap_or_else(|| Ident::new("ctx", Span::call_site())),
        scope: contexts.iter().cloned().map(Binding::Context).collect(),
        step_depth: 0,
        allowed_depth: 0,
        labels: HashMap::new(),
        branch_nodes: 0,
        path: Vec::new(),
        unlabelled: 0,
        edits: 0,
        out: Analysis::default(),
    };
    walker.visit_block_mut(block);
    walker.out
}

/// A name in scope that matters to the walk.
enum Binding {
    /// A context.
    Context(Ident),
    /// A rebinding that hides a context of the same name.
    Shadow(Ident),
}

impl Binding {
    fn ident(&self) -> &Ident {
        match self {
            Binding::Context(i) | Binding::Shadow(i) => i,
        }
    }
}

/// What a closure argument is to the call it is passed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An ordinary closure.
    Plain,
    /// Its first parameter is a (child) context.
    Context,
    /// A step body.
    Step,
}

/// One step of a branch path: arm `arm` of the `node`-th `if`/`match` met in the walk
/// (a then-block is arm 0 of its `if`, the `else` branch arm 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Branch {
    node: usize,
    arm: usize,
}

/// A labelled site seen earlier in the walk.
struct LabelUse {
    method: &'static str,
    path: Vec<Branch>,
}

/// Whether code on branch paths `a` and `b` can never run in the same pass: they lie in
/// different arms of one `if` or `match`.
fn exclusive(a: &[Branch], b: &[Branch]) -> bool {
    // Node numbers are never reused, so two paths share a prefix and then either end or
    // part ways once; only parting at one node, by different arms, keeps them apart. Parting
    // at different nodes means sibling `if`s or `match`es, which both run.
    a.iter().zip(b).find(|(x, y)| x != y).is_some_and(|(x, y)| x.node == y.node)
}

struct Walker<'a> {
    options: &'a Options<'a>,
    /// The context named in suggestions when no other is in scope.
    fallback_ctx: Ident,
    scope: Vec<Binding>,
    /// How many step closures enclose the code being walked.
    step_depth: usize,
    /// How many `#[nondeterministic]` markers enclose the code being walked.
    allowed_depth: usize,
    /// Every labelled site so far, by label, in source order.
    labels: HashMap<String, Vec<LabelUse>>,
    /// How many `if`s and `match`es the walk has numbered (from 1, in source order).
    branch_nodes: usize,
    /// The arms that enclose the code being walked, outermost first.
    path: Vec<Branch>,
    unlabelled: u32,
    /// Changes made to the tree, to know whether a macro's tokens must be re-emitted.
    edits: usize,
    out: Analysis,
}

impl Walker<'_> {
    /// Whether `ident` names a context here.
    fn is_known(&self, ident: &Ident) -> bool {
        match self.scope.iter().rev().find(|b| b.ident() == ident) {
            Some(Binding::Context(_)) => true,
            Some(Binding::Shadow(_)) | None => false,
        }
    }

    /// The innermost context in scope, for suggestions.
    fn current_ctx(&self) -> &Ident {
        self.scope
            .iter()
            .rev()
            .find_map(|b| match b {
                Binding::Context(i) if self.is_known(i) => Some(i),
                _ => None,
            })
            .unwrap_or(&self.fallback_ctx)
    }

    /// Hides every known context that `pat` rebinds.
    fn shadow(&mut self, pat: &Pat) {
        let mut names = Names(Vec::new());
        names.visit_pat(pat);
        for name in names.0 {
            if self.is_known(&name) {
                self.scope.push(Binding::Shadow(name));
            }
        }
    }

    fn lints_on(&self) -> bool {
        self.options.lints && self.step_depth == 0 && self.allowed_depth == 0
    }

    /// Takes the `#[nondeterministic]` markers from `attrs`; whether there was one.
    fn marker(&mut self, attrs: &mut Vec<syn::Attribute>) -> bool {
        let (found, error) = lints::take_marker(attrs);
        if found {
            self.edits += 1;
        }
        self.out.errors.extend(error);
        found
    }

    /// Runs `f` with the lints suppressed when `marked`.
    fn allowing(&mut self, marked: bool, f: impl FnOnce(&mut Self)) {
        self.allowed_depth += usize::from(marked);
        f(self);
        self.allowed_depth -= usize::from(marked);
    }

    /// The durable method `call` is a site of, if its receiver is a known context.
    fn site_of(&self, call: &ExprMethodCall) -> Option<&'static Method> {
        let recv = plain_ident(&call.receiver)?;
        if !self.is_known(recv) {
            return None;
        }
        methods::lookup(&call.method.to_string())
    }

    /// Whether `expr` is a chain of method calls that starts at a site whose chained
    /// closures take a context (`ctx.parallel("p").branch(..)`).
    fn chained_to_context_closures(&self, mut expr: &Expr) -> bool {
        loop {
            match expr {
                Expr::MethodCall(call) => {
                    if self.site_of(call).is_some_and(|m| m.context_closures == ContextClosures::Chained) {
                        return true;
                    }
                    expr = &call.receiver;
                }
                Expr::Paren(p) => expr = &p.expr,
                Expr::Group(g) => expr = &g.expr,
                _ => return false,
            }
        }
    }

    /// Records a site; returns its slot in the table.
    fn record(&mut self, method: &'static Method, call: &ExprMethodCall) -> usize {
        let label = if method.labelled { call.args.first().and_then(string_literal) } else { None };
        let ordinal = if let Some(lit) = &label {
            let value = lit.value();
            let uses = self.labels.entry(value.clone()).or_default();
            if let Some(first) = uses.iter().find(|u| !exclusive(&u.path, &self.path)) {
                self.out.errors.push(syn::Error::new(
                    lit.span(),
                    format!(
                        "duplicate durable label `{value}` in this function; labels name operations and must be \
                         unique (the first `{value}` is a `{}` call above)",
                        first.method
                    ),
                ));
            }
            // A duplicate is kept too: a later use must be exclusive with every use that
            // can run, including one already reported.
            uses.push(LabelUse { method: method.name, path: self.path.clone() });
            0
        } else {
            self.unlabelled += 1;
            self.unlabelled - 1
        };
        self.out.sites.push(SiteEntry { method: method.name, label, ordinal });
        self.out.sites.len() - 1
    }

    /// Numbers a new `if` or `match`.
    fn branch_node(&mut self) -> usize {
        self.branch_nodes += 1;
        self.branch_nodes
    }

    /// Runs `f` inside arm `arm` of branch node `node`.
    fn in_arm(&mut self, node: usize, arm: usize, f: impl FnOnce(&mut Self)) {
        self.path.push(Branch { node, arm });
        f(self);
        self.path.pop();
    }

    /// Visits the `index`-th arm of the `match` numbered `node`.
    fn visit_arm(&mut self, arm: &mut Arm, node: usize, index: usize) {
        let marked = self.marker(&mut arm.attrs);
        let depth = self.scope.len();
        self.shadow(&arm.pat);
        self.allowing(marked, |this| {
            // The pattern holds the guard (`Some(x) if ..`), which runs whenever its pattern
            // matches, also when it then fails and a later arm is taken: like the
            // scrutinee, it belongs to the `match` as a whole, not to its arm.
            this.visit_pat_mut(&mut arm.pat);
            this.in_arm(node, index, |this| this.visit_expr_mut(&mut arm.body));
        });
        self.scope.truncate(depth);
    }

    /// Visits an argument that may be a closure with a role.
    fn visit_arg(&mut self, arg: &mut Expr, role: Role) {
        if role == Role::Plain {
            return self.visit_expr_mut(arg);
        }
        let marked = lints::expr_attrs_mut(arg).is_some_and(|attrs| self.marker(attrs));
        self.allowing(marked, |this| match peel_mut(arg) {
            Expr::Closure(closure) => this.visit_closure(closure, role),
            other => this.visit_expr_mut(other),
        });
    }

    fn visit_closure(&mut self, closure: &mut ExprClosure, role: Role) {
        let depth = self.scope.len();
        let mut params = closure.inputs.iter();
        if role == Role::Context
            && let Some(first) = params.next()
        {
            match binding(first) {
                Some(ident) => self.scope.push(Binding::Context(ident.clone())),
                None => self.shadow(first),
            }
        }
        for param in params {
            self.shadow(param);
        }
        let step = usize::from(role == Role::Step);
        self.step_depth += step;
        self.visit_expr_mut(&mut closure.body);
        self.step_depth -= step;
        self.scope.truncate(depth);
    }

    fn visit_local(&mut self, local: &mut Local) {
        // `let c = ctx.clone();`, `let c = &ctx;`, `let c: DurableContext = ..;`.
        let alias = binding(&local.pat).filter(|_| {
            matches!(&local.pat, Pat::Type(t) if is_context(&t.ty))
                || local.init.as_ref().is_some_and(|init| init.diverge.is_none() && self.is_context_expr(&init.expr))
        });
        let alias = alias.cloned();
        let marked = self.marker(&mut local.attrs);
        self.allowing(marked, |this| {
            if let Some(init) = &mut local.init {
                this.visit_expr_mut(&mut init.expr);
                if let Some((_, diverge)) = &mut init.diverge {
                    this.visit_expr_mut(diverge);
                }
            }
        });
        match alias {
            Some(ident) => self.scope.push(Binding::Context(ident)),
            None => self.shadow(&local.pat),
        }
    }

    /// Visits an `if`/`while` condition; the names its `let`s bind stay in scope (the
    /// caller drops them after the guarded block).
    fn visit_condition(&mut self, cond: &mut Expr) {
        match cond {
            Expr::Let(expr) => {
                self.visit_expr_mut(&mut expr.expr);
                self.shadow(&expr.pat);
            }
            Expr::Binary(expr) if matches!(expr.op, syn::BinOp::And(_)) => {
                self.visit_condition(&mut expr.left);
                self.visit_condition(&mut expr.right);
            }
            other => self.visit_expr_mut(other),
        }
    }

    /// Whether `expr` visibly evaluates to a known context: `ctx`, `&ctx`, `ctx.clone()`.
    fn is_context_expr(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Reference(r) => self.is_context_expr(&r.expr),
            Expr::Paren(p) => self.is_context_expr(&p.expr),
            Expr::MethodCall(m) if m.method == "clone" && m.args.is_empty() => self.is_context_expr(&m.receiver),
            _ => plain_ident(expr).is_some_and(|i| self.is_known(i)),
        }
    }
}

impl VisitMut for Walker<'_> {
    fn visit_block_mut(&mut self, block: &mut Block) {
        let depth = self.scope.len();
        for stmt in &mut block.stmts {
            match stmt {
                Stmt::Local(local) => self.visit_local(local),
                Stmt::Macro(mac) => {
                    let marked = self.marker(&mut mac.attrs);
                    self.allowing(marked, |this| this.visit_macro_mut(&mut mac.mac));
                }
                _ => self.visit_stmt_mut(stmt),
            }
        }
        self.scope.truncate(depth);
    }

    // A nested item is another function (or type): not part of this durable body.
    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        let marked = lints::expr_attrs_mut(expr).is_some_and(|attrs| self.marker(attrs));
        self.allowing(marked, |this| visit_mut::visit_expr_mut(this, expr));
    }

    fn visit_expr_match_mut(&mut self, expr: &mut ExprMatch) {
        self.visit_expr_mut(&mut expr.expr);
        let node = self.branch_node();
        for (index, arm) in expr.arms.iter_mut().enumerate() {
            self.visit_arm(arm, node, index);
        }
    }

    fn visit_expr_for_loop_mut(&mut self, for_loop: &mut ExprForLoop) {
        self.visit_expr_mut(&mut for_loop.expr);
        let depth = self.scope.len();
        self.shadow(&for_loop.pat);
        self.visit_block_mut(&mut for_loop.body);
        self.scope.truncate(depth);
    }

    // `if let` / `while let` bindings are in scope in the branch or body they guard.
    // The condition runs on both paths, so it is outside the arms. An `else if` is an `if`
    // inside arm 1, which keeps its own arms apart from each other and from the outer
    // then-block.
    fn visit_expr_if_mut(&mut self, expr: &mut ExprIf) {
        let depth = self.scope.len();
        self.visit_condition(&mut expr.cond);
        let node = self.branch_node();
        self.in_arm(node, 0, |this| this.visit_block_mut(&mut expr.then_branch));
        self.scope.truncate(depth);
        if let Some((_, otherwise)) = &mut expr.else_branch {
            self.in_arm(node, 1, |this| this.visit_expr_mut(otherwise));
        }
    }

    fn visit_expr_while_mut(&mut self, expr: &mut ExprWhile) {
        let depth = self.scope.len();
        self.visit_condition(&mut expr.cond);
        self.visit_block_mut(&mut expr.body);
        self.scope.truncate(depth);
    }

    fn visit_expr_closure_mut(&mut self, closure: &mut ExprClosure) {
        self.visit_closure(closure, Role::Plain);
    }

    fn visit_expr_call_mut(&mut self, call: &mut ExprCall) {
        if self.lints_on()
            && let Expr::Path(func) = &*call.func
            && func.qself.is_none()
            && let Some(error) = lints::check(&func.path, lints::Form::Call, self.current_ctx())
        {
            self.out.errors.push(error);
        }
        visit_mut::visit_expr_call_mut(self, call);
    }

    fn visit_expr_method_call_mut(&mut self, call: &mut ExprMethodCall) {
        let Some(method) = self.site_of(call) else {
            let chained = self.chained_to_context_closures(&call.receiver);
            // A step body passed through another receiver (`self.ctx.step(..)`) is still a
            // step body: the lints stay off in it.
            let step = methods::lookup(&call.method.to_string()).and_then(|m| m.step_closure);
            self.visit_expr_mut(&mut call.receiver);
            for (i, arg) in call.args.iter_mut().enumerate() {
                let role = if chained {
                    Role::Context
                } else if step == Some(i) {
                    Role::Step
                } else {
                    Role::Plain
                };
                self.visit_arg(arg, role);
            }
            return;
        };
        if self.step_depth > 0 {
            let (recv, dot, name) = (&call.receiver, &call.dot_token, &call.method);
            let ctx = self.current_ctx();
            self.out.errors.push(syn::Error::new_spanned(
                quote!(#recv #dot #name),
                format!(
                    "durable operations cannot run inside a step: a step's body runs once and only its result is \
                     recorded, so this `{name}` would not be replayed; move it out of the step, or group durable \
                     operations in the #[durable] function with `{ctx}.run_in_child_context(\"name\", async |ctx| ..)`"
                ),
            ));
            for arg in &mut call.args {
                self.visit_expr_mut(arg);
            }
            return;
        }
        let index = self.record(method, call);
        self.edits += 1;
        let recv = &call.receiver;
        // Every token of the new receiver carries the user's span, so that errors about
        // the whole call (a tail expression of the wrong type...) point at the call, not
        // at the attribute.
        let span = recv.span();
        let krate = respan(self.options.krate.to_token_stream(), span);
        let table = self.options.table;
        let index = Literal::usize_unsuffixed(index);
        *call.receiver = syn::parse_quote_spanned!(span=> #krate::__private::at(&#recv, &#table[#index]));
        for (i, arg) in call.args.iter_mut().enumerate() {
            let role = if method.step_closure == Some(i) {
                Role::Step
            } else if method.context_closures == ContextClosures::Arg(i) {
                Role::Context
            } else {
                Role::Plain
            };
            self.visit_arg(arg, role);
        }
    }

    // Every macro invocation (statement, expression or nested in another macro's
    // arguments) comes here. Its path is linted (`tokio::select!`, `futures::join!`); its
    // arguments, when they read as comma-separated expressions (`format!`, `vec!`,
    // `assert!`, `join!`...), are walked too; the tokens are re-emitted only if the walk
    // changed something.
    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        const OPAQUE: &[&str] = &[
            "stringify",
            "concat",
            "include",
            "include_str",
            "include_bytes",
            "module_path",
            "file",
            "line",
            "column",
            "cfg",
            "env",
            "option_env",
            "compile_error",
        ];
        if self.lints_on()
            && let Some(error) = lints::check(&mac.path, lints::Form::Macro, self.current_ctx())
        {
            self.out.errors.push(error);
        }
        if mac.path.segments.last().is_some_and(|s| OPAQUE.iter().any(|o| s.ident == o)) {
            return;
        }
        let Ok(mut args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) else {
            return;
        };
        let before = self.edits;
        for arg in &mut args {
            self.visit_expr_mut(arg);
        }
        if self.edits != before {
            mac.tokens = args.into_token_stream();
        }
    }
}

/// The names a pattern binds.
struct Names(Vec<Ident>);

impl<'ast> Visit<'ast> for Names {
    fn visit_pat_ident(&mut self, pat: &'ast PatIdent) {
        self.0.push(pat.ident.clone());
        syn::visit::visit_pat_ident(self, pat);
    }

    // Types and expressions inside patterns bind nothing.
    fn visit_type(&mut self, _: &'ast syn::Type) {}
    fn visit_expr(&mut self, _: &'ast Expr) {}
}

/// The identifier `expr` is, if it is a plain one (`ctx`, not `self.ctx` or `a::ctx`).
fn plain_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident(),
        _ => None,
    }
}

/// The string literal `expr` is, through parentheses and invisible groups.
fn string_literal(expr: &Expr) -> Option<syn::LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Paren(p) => string_literal(&p.expr),
        Expr::Group(g) => string_literal(&g.expr),
        _ => None,
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = TokenTree::Group(group);
            }
            tt.set_span(span);
            tt
        })
        .collect()
}

fn peel_mut(expr: &mut Expr) -> &mut Expr {
    match expr {
        Expr::Paren(p) => peel_mut(&mut p.expr),
        Expr::Group(g) => peel_mut(&mut g.expr),
        other => other,
    }
}

#[cfg(test)]
mod tests;
