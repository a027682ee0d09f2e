//! Expansion snapshots: every `tests/expand/NAME.rs` is expanded with the same function
//! the attribute uses, formatted with prettyplease, and compared with
//! `tests/expand/NAME.expanded.rs`. `DURABLE_BLESS=1` rewrites the snapshots instead (see
//! DEVELOPMENT.md).

use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::{Attribute, ImplItem, Item, Meta};

/// Expands every `#[durable]` in a file, as the compiler would (other macros untouched).
fn expand_file(source: &str) -> String {
    let mut file: syn::File = syn::parse_str(source).expect("the input parses");
    for item in &mut file.items {
        expand_item(item);
    }
    prettyplease::unparse(&file)
}

fn expand_item(item: &mut Item) {
    match item {
        Item::Fn(func) => {
            if let Some(args) = take_durable(&mut func.attrs) {
                *item = syn::parse2(crate::expand::durable(args, func.to_token_stream())).expect("output parses");
            }
        }
        Item::Impl(imp) => {
            for member in &mut imp.items {
                if let ImplItem::Fn(func) = member
                    && let Some(args) = take_durable(&mut func.attrs)
                {
                    *member = syn::parse2(crate::expand::durable(args, func.to_token_stream())).expect("output parses");
                }
            }
        }
        Item::Mod(module) => {
            for item in module.content.iter_mut().flat_map(|(_, items)| items) {
                expand_item(item);
            }
        }
        _ => {}
    }
}

/// Removes `#[durable]` / `#[durable(..)]` / `#[durable::durable(..)]`; returns its arguments.
fn take_durable(attrs: &mut Vec<Attribute>) -> Option<TokenStream> {
    let at = attrs.iter().position(|a| a.path().segments.last().is_some_and(|s| s.ident == "durable"))?;
    Some(match attrs.remove(at).meta {
        Meta::List(list) => list.tokens,
        _ => TokenStream::new(),
    })
}

fn inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/expand exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.to_string_lossy().ends_with(".expanded.rs"))
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn expansions_match_the_snapshots() {
    let bless = std::env::var_os("DURABLE_BLESS").is_some_and(|v| v == "1");
    let inputs = inputs();
    assert!(inputs.len() >= 3, "expected the expansion inputs in tests/expand, found {inputs:?}");
    let mut stale = Vec::new();
    for input in inputs {
        let expanded = expand_file(&fs::read_to_string(&input).unwrap());
        let snapshot = input.with_extension("expanded.rs");
        if bless {
            fs::write(&snapshot, &expanded).unwrap();
            continue;
        }
        match fs::read_to_string(&snapshot) {
            Ok(want) if want == expanded => {}
            Ok(want) => {
                eprintln!("--- {}\n+++ expansion of {}", snapshot.display(), input.display());
                for (line, (w, g)) in want.lines().zip(expanded.lines()).enumerate() {
                    if w != g {
                        eprintln!("first difference at line {}:\n- {w}\n+ {g}", line + 1);
                        break;
                    }
                }
                stale.push(snapshot);
            }
            Err(_) => stale.push(snapshot),
        }
    }
    assert!(
        stale.is_empty(),
        "expansion snapshots differ or are missing: {stale:?}; if the change is intended, run \
         `DURABLE_BLESS=1 cargo test -p durable-macros` and review the diff"
    );
}

#[test]
fn expansions_are_idempotent_on_plain_code() {
    let source = "fn plain() -> u32 { 1 }\n";
    assert_eq!(expand_file(source), prettyplease::unparse(&syn::parse_str(source).unwrap()));
}
