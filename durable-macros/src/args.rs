//! The arguments of the attribute: `#[durable(name = "..", crate = path, allow_nondeterminism)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser as _;
use syn::{LitStr, Path, Token};

/// The keys `#[durable(..)]` accepts, as the unknown-key error lists them.
const KEYS: &str = "`name`, `crate`, `allow_nondeterminism`";

/// The parsed attribute arguments.
pub(crate) struct Args {
    /// `name = "..."`: the pinned function name that replaces `module_path!()::fn`.
    pub(crate) name: Option<LitStr>,
    /// `crate = path`: where the support module lives (default `::durable`).
    pub(crate) krate: Path,
    /// `allow_nondeterminism`: switches every nondeterminism lint off for the function.
    pub(crate) allow_nondeterminism: bool,
}

impl Args {
    /// Parses the tokens between the attribute's parentheses.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
        let mut name: Option<LitStr> = None;
        let mut krate: Option<Path> = None;
        let mut allow = false;
        let mut errors: Option<syn::Error> = None;
        let mut push = |e: syn::Error| match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        };
        let parser = syn::meta::parser(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            match key.as_str() {
                "name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        push(syn::Error::new(lit.span(), "#[durable(name = ..)] must not be empty"));
                    }
                    if name.replace(lit).is_some() {
                        push(meta.error("duplicate `name` in #[durable(..)]"));
                    }
                }
                "crate" => {
                    let value = meta.value()?;
                    // Both `crate = some::path` and tokio's `crate = "some::path"`.
                    let path = if value.peek(LitStr) {
                        value.parse::<LitStr>()?.parse::<Path>()?
                    } else {
                        value.call(Path::parse_mod_style)?
                    };
                    if krate.replace(path).is_some() {
                        push(meta.error("duplicate `crate` in #[durable(..)]"));
                    }
                }
                "allow_nondeterminism" => {
                    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                        return Err(meta.error("`allow_nondeterminism` in #[durable(..)] takes no value"));
                    }
                    if std::mem::replace(&mut allow, true) {
                        push(meta.error("duplicate `allow_nondeterminism` in #[durable(..)]"));
                    }
                }
                _ => {
                    let shown = meta.path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::");
                    return Err(
                        meta.error(format_args!("unknown #[durable] argument `{shown}`; expected one of {KEYS}"))
                    );
                }
            }
            Ok(())
        });
        if let Err(e) = parser.parse2(tokens) {
            push(e);
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(Args {
                name,
                krate: krate.unwrap_or_else(|| syn::parse_quote_spanned!(Span::call_site()=> ::durable)),
                allow_nondeterminism: allow,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens as _, quote};

    use super::*;

    fn err(tokens: TokenStream) -> String {
        match Args::parse(tokens) {
            Ok(_) => panic!("parsed"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"),
        }
    }

    #[test]
    fn defaults() {
        let a = Args::parse(TokenStream::new()).unwrap();
        assert!(a.name.is_none());
        assert!(!a.allow_nondeterminism);
        assert_eq!(a.krate.to_token_stream().to_string(), ":: durable");
    }

    #[test]
    fn all_keys() {
        let a = Args::parse(quote!(name = "shop-checkout", crate = ::my::durable, allow_nondeterminism)).unwrap();
        assert_eq!(a.name.unwrap().value(), "shop-checkout");
        assert_eq!(a.krate.to_token_stream().to_string(), ":: my :: durable");
        assert!(a.allow_nondeterminism);
    }

    #[test]
    fn crate_as_a_string() {
        let a = Args::parse(quote!(crate = "durable_core")).unwrap();
        assert_eq!(a.krate.to_token_stream().to_string(), "durable_core");
    }

    #[test]
    fn unknown_key_lists_the_accepted_ones() {
        assert_eq!(
            err(quote!(nmae = "x")),
            "unknown #[durable] argument `nmae`; expected one of `name`, `crate`, `allow_nondeterminism`"
        );
    }

    #[test]
    fn bad_values() {
        assert_eq!(err(quote!(name = "")), "#[durable(name = ..)] must not be empty");
        assert_eq!(err(quote!(name = "a", name = "b")), "duplicate `name` in #[durable(..)]");
        assert_eq!(err(quote!(allow_nondeterminism = true)), "`allow_nondeterminism` in #[durable(..)] takes no value");
        assert!(err(quote!(name = checkout)).contains("expected string literal"), "{}", err(quote!(name = checkout)));
    }
}
