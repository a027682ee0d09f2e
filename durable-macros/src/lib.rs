//! The `#[durable]` attribute (placeholder: passes the item through).
use proc_macro::TokenStream;

/// Marks an async function as durable.
#[proc_macro_attribute]
pub fn durable(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
