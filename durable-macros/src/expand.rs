//! The expansion: args -> signature -> body walk -> output, or the original item plus
//! every error found.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens as _, quote};
use syn::ext::IdentExt as _;
use syn::{Ident, ItemFn, LitStr, Stmt};

use crate::args::Args;
use crate::sites::{self, Analysis, Options, SiteEntry};
use crate::{lints, validate};

/// Expands `#[durable(args)] item`. Never fails: errors come back as `compile_error!`s
/// beside the original item, so the rest of the crate (and rust-analyzer) still sees the
/// function.
pub(crate) fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = Args::parse(args);
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => return not_a_function(item, &e),
    };
    let checked = validate::signature(&func.sig);
    let (args, checked) = match (args, checked) {
        (Ok(args), Ok(checked)) => (args, checked),
        (args, checked) => {
            let errors: Vec<syn::Error> = [args.err(), checked.err()].into_iter().flatten().collect();
            return fallback(&original(func), &errors);
        }
    };
    match expand(func.clone(), &args, &checked.contexts) {
        Ok(tokens) => tokens,
        Err(errors) => fallback(&original(func), &errors),
    }
}

/// The function with its sites rewritten and its site table in front of the body.
fn expand(mut func: ItemFn, args: &Args, contexts: &[Ident]) -> Result<TokenStream, Vec<syn::Error>> {
    let fn_const = Ident::new("__DURABLE_FN", Span::mixed_site());
    let table = Ident::new("__DURABLE_SITES", Span::mixed_site());
    let options = Options { krate: &args.krate, table: &table, lints: !args.allow_nondeterminism };
    let Analysis { sites, errors } = sites::rewrite(&mut func.block, contexts, &options);
    if !errors.is_empty() {
        return Err(errors);
    }
    if !sites.is_empty() {
        let items = site_table(&func, args, &fn_const, &table, &sites);
        func.block.stmts.splice(0..0, items);
    }
    Ok(func.into_token_stream())
}

/// `const __DURABLE_FN: &str = ..; static __DURABLE_SITES: [Site; N] = [..];`
fn site_table(func: &ItemFn, args: &Args, fn_const: &Ident, table: &Ident, sites: &[SiteEntry]) -> [Stmt; 2] {
    let krate = &args.krate;
    let name = if let Some(pinned) = &args.name {
        pinned.to_token_stream()
    } else {
        let ident = &func.sig.ident;
        let name = LitStr::new(&ident.unraw().to_string(), ident.span());
        quote!(::core::concat!(::core::module_path!(), "::", #name))
    };
    let entries = sites.iter().map(|site| {
        let method = LitStr::new(site.method, Span::call_site());
        if let Some(label) = &site.label {
            quote!(#krate::__private::Site::labelled(#fn_const, #method, #label))
        } else {
            let ordinal = Literal::u32_unsuffixed(site.ordinal);
            quote!(#krate::__private::Site::unlabelled(#fn_const, #method, #ordinal))
        }
    });
    let len = Literal::usize_unsuffixed(sites.len());
    let span = Span::mixed_site();
    [
        syn::parse_quote_spanned!(span=> const #fn_const: &::core::primitive::str = #name;),
        syn::parse_quote_spanned!(span=> static #table: [#krate::__private::Site; #len] = [#(#entries),*];),
    ]
}

/// The function as written, minus the `#[nondeterministic]` markers that only this
/// macro understands.
fn original(mut func: ItemFn) -> TokenStream {
    lints::strip_markers(&mut func.block);
    func.into_token_stream()
}

/// The item that did not parse as a function, followed by the one error about it.
fn not_a_function(mut item: TokenStream, e: &syn::Error) -> TokenStream {
    let error = match syn::parse2::<syn::Item>(item.clone()) {
        // Not a function at all, or one without a body: point at the attribute.
        Ok(_) => syn::Error::new(
            Span::call_site(),
            "#[durable] goes on an `async fn` with a body, e.g. `async fn checkout(ctx: DurableContext) -> \
             durable::Result<()>`",
        ),
        // A function whose syntax syn does not know (yet).
        Err(_) => syn::Error::new(e.span(), format!("#[durable] cannot read this function: {e}")),
    };
    item.extend(error.to_compile_error());
    item
}

/// The original item followed by the errors.
fn fallback(item: &TokenStream, errors: &[syn::Error]) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote!(#item #(#errors)*)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn errors_of(tokens: &TokenStream) -> Vec<String> {
        let file: syn::File = syn::parse2(tokens.clone()).unwrap();
        file.items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Macro(m) if m.mac.path.segments.last().unwrap().ident == "compile_error" => {
                    Some(m.mac.parse_body::<LitStr>().unwrap().value())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_sites_no_table() {
        let out = durable(
            TokenStream::new(),
            quote!(
                async fn f(ctx: DurableContext) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            out.to_string(),
            quote!(
                async fn f(ctx: DurableContext) -> Result<(), E> {
                    Ok(())
                }
            )
            .to_string()
        );
    }

    #[test]
    fn not_a_function() {
        let out = durable(
            TokenStream::new(),
            quote!(
                struct S;
            ),
        );
        assert_eq!(
            errors_of(&out),
            ["#[durable] goes on an `async fn` with a body, e.g. `async fn checkout(ctx: DurableContext) -> \
              durable::Result<()>`"]
        );
        assert!(out.to_string().starts_with("struct S ;"));
    }

    #[test]
    fn errors_keep_the_original_item_without_markers() {
        let input = quote! {
            async fn f(ctx: DurableContext) -> Result<(), E> {
                #[nondeterministic]
                let a = Instant::now();
                let b = Instant::now();
                ctx.step("x", f).await?;
                Ok(())
            }
        };
        let out = durable(TokenStream::new(), input);
        let file: syn::File = syn::parse2(out.clone()).unwrap();
        let syn::Item::Fn(func) = &file.items[0] else { panic!("{out}") };
        let body = func.block.to_token_stream().to_string();
        assert!(!body.contains("nondeterministic"), "{body}");
        assert!(!body.contains("__private"), "{body}");
        assert_eq!(errors_of(&out).len(), 1);
    }

    #[test]
    fn arg_and_signature_errors_are_reported_together() {
        let out = durable(
            quote!(nmae = "x"),
            quote!(
                fn f() -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(errors_of(&out).len(), 3, "{out}");
    }

    #[test]
    fn unreadable_function() {
        let out = durable(
            TokenStream::new(),
            quote!(
                async fn f(ctx: DurableContext) -> Result<(), E>;
            ),
        );
        assert_eq!(errors_of(&out).len(), 1, "{out}");
    }
}
