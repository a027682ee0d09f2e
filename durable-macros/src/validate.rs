//! Signature checks: an `async fn` with a context parameter that returns a `Result`.

use syn::{FnArg, Ident, Pat, ReturnType, Signature, Type};

/// What the signature tells the rest of the expansion.
pub(crate) struct Checked {
    /// The names of the context parameters, in order (almost always exactly one).
    pub(crate) contexts: Vec<Ident>,
}

/// Checks the signature; every problem found is one error, all reported together.
pub(crate) fn signature(sig: &Signature) -> syn::Result<Checked> {
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format_args!("#[durable] works on an `async fn` only; write `async fn {}`", sig.ident),
        ));
    }

    let mut contexts = Vec::new();
    let mut unnamed = false;
    for arg in &sig.inputs {
        let FnArg::Typed(arg) = arg else { continue };
        if !is_context(&arg.ty) {
            continue;
        }
        if let Some(ident) = binding(&arg.pat) {
            contexts.push(ident.clone());
        } else {
            unnamed = true;
            errors.push(syn::Error::new_spanned(
                &arg.pat,
                "#[durable] needs the context parameter bound to a plain name, e.g. `ctx: DurableContext`",
            ));
        }
    }
    if contexts.is_empty() && !unnamed {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "#[durable] needs a context parameter: add `ctx: DurableContext` (or `ctx: &DurableContext`)",
        ));
    }

    let returns_result = match &sig.output {
        ReturnType::Type(_, ty) => last_segment_is(ty, "Result"),
        ReturnType::Default => false,
    };
    if !returns_result {
        let message =
            "#[durable] functions return a `Result`, e.g. `durable::Result<T>` or `Result<T, durable::Error>`";
        errors.push(match &sig.output {
            ReturnType::Type(_, ty) => syn::Error::new_spanned(ty, message),
            ReturnType::Default => syn::Error::new(sig.paren_token.span.close(), message),
        });
    }

    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(Checked { contexts }),
        Some(mut first) => {
            errors.for_each(|e| first.combine(e));
            Err(first)
        }
    }
}

/// Whether `ty` is a context: a path ending in `DurableContext`, by value or by reference.
pub(crate) fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_context(&r.elem),
        _ => last_segment_is(ty, "DurableContext"),
    }
}

/// Whether `ty` is a path type whose last segment is `name` (whatever its arguments).
fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Paren(p) => last_segment_is(&p.elem, name),
        Type::Group(g) => last_segment_is(&g.elem, name),
        _ => false,
    }
}

/// The name a pattern binds when it is a plain identifier (`c`, `mut c`, `c: Ty`).
pub(crate) fn binding(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => Some(&p.ident),
        Pat::Type(p) => binding(&p.pat),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn errors(sig: &Signature) -> Vec<String> {
        match signature(sig) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_the_usual_shapes() {
        let sigs: [Signature; 6] = [
            parse_quote!(async fn f(ctx: DurableContext) -> Result<(), Error>),
            parse_quote!(async fn f(ctx: &DurableContext, n: u32) -> durable::Result<u32>),
            parse_quote!(async fn f(mut ctx: &mut durable::DurableContext) -> std::result::Result<(), E>),
            parse_quote!(async fn f(&self, ctx: ::durable::DurableContext) -> Result<()>),
            parse_quote!(async fn f<T: Clone>(input: T, c: DurableContext) -> (Result<T, Error>)),
            parse_quote!(async unsafe fn f(ctx: DurableContext) -> Result<(), Error>),
        ];
        for sig in sigs {
            assert_eq!(errors(&sig), Vec::<String>::new(), "{}", quote::quote!(#sig));
        }
        let sig: Signature = parse_quote!(async fn f(a: DurableContext, b: &DurableContext) -> Result<(), Error>);
        let names: Vec<String> = signature(&sig).unwrap().contexts.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn not_async() {
        assert_eq!(
            errors(&parse_quote!(fn checkout(ctx: DurableContext) -> Result<(), Error>)),
            ["#[durable] works on an `async fn` only; write `async fn checkout`"]
        );
    }

    #[test]
    fn no_context() {
        assert_eq!(
            errors(&parse_quote!(async fn f(n: u32) -> Result<(), Error>)),
            ["#[durable] needs a context parameter: add `ctx: DurableContext` (or `ctx: &DurableContext`)"]
        );
        assert_eq!(
            errors(&parse_quote!(async fn f((a, b): DurableContext) -> Result<(), Error>)),
            ["#[durable] needs the context parameter bound to a plain name, e.g. `ctx: DurableContext`"]
        );
    }

    #[test]
    fn wrong_return_type() {
        let want = "#[durable] functions return a `Result`, e.g. `durable::Result<T>` or `Result<T, durable::Error>`";
        assert_eq!(errors(&parse_quote!(async fn f(ctx: DurableContext) -> u32)), [want]);
        assert_eq!(errors(&parse_quote!(async fn f(ctx: DurableContext))), [want]);
        assert_eq!(errors(&parse_quote!(async fn f(ctx: DurableContext) -> Option<Result<(), E>>)), [want]);
    }

    #[test]
    fn every_problem_is_reported() {
        assert_eq!(errors(&parse_quote!(fn f() -> u32)).len(), 3);
    }
}
