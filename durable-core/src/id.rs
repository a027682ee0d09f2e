//! Operation ids: compile-time call sites plus a run-time occurrence, hashed with a named,
//! fixed algorithm.
//!
//! # The algorithm (`durable-id-v1`)
//!
//! `#[durable]` gives every durable call site in a function a **site key**, fixed at compile
//! time from stable inputs only: the function's path (or its pinned `#[durable(name = ...)]`)
//! and the call's label (the literal name passed to it) or, for calls without a literal
//! name, its ordinal among the unlabelled sites of that function: `function 0x1E "L" label`
//! or `function 0x1E "U" ordinal` (see [`Site::key`]). Line and column numbers
//! never enter it. At run time an operation's id is
//!
//! ```text
//! id = lowercase_hex( SHA-256( "durable-id-v1" 0x1F parent_id 0x1F site_key 0x1F occurrence ) [0..16] )
//! ```
//!
//! where `parent_id` is the id of the enclosing child context (empty at the root) and
//! `occurrence` is the decimal count of earlier calls of the same site under the same
//! parent in this execution (0 for the first). Ids are 32 characters of `[0-9a-f]`, within
//! the protocol's 64 characters of `[A-Za-z0-9_-]`. Consequences:
//!
//! * a labelled operation keeps its id when other operations are inserted or removed
//!   anywhere else in the function;
//! * a loop gives each iteration its own id (the occurrence grows);
//! * renaming or moving the function changes every id in it, unless the function pins its
//!   name with `#[durable(name = "...")]`.
//!
//! Calls made without a compile-time site (from a helper function that does not carry
//! `#[durable]`) fall back to a positional key, `#{n}`, counted per parent, the scheme
//! AWS's SDKs use for every call. Golden tests pin this algorithm: a changed id breaks every
//! execution in flight.

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The version tag hashed into every id.
pub const ID_ALGORITHM: &str = "durable-id-v1";

/// A durable call site, emitted by `#[durable]` as a `static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Site {
    /// The function's path (`module_path!()::name`) or its pinned name.
    pub function: &'static str,
    /// The method called, e.g. `step`.
    pub method: &'static str,
    /// The literal name given at the call, if any.
    pub label: Option<&'static str>,
    /// The ordinal among the unlabelled sites of the function (0 for labelled sites).
    pub ordinal: u32,
}

impl Site {
    /// A site whose call passes a literal name.
    pub const fn labelled(function: &'static str, method: &'static str, label: &'static str) -> Site {
        Site { function, method, label: Some(label), ordinal: 0 }
    }

    /// A site without a literal name: the `ordinal`-th such site in the function.
    pub const fn unlabelled(function: &'static str, method: &'static str, ordinal: u32) -> Site {
        Site { function, method, label: None, ordinal }
    }

    /// The site key hashed into operation ids: the function, a 0x1E separator, then `L`
    /// and the label, or `U` and the ordinal (so no label can collide with an ordinal).
    pub fn key(&self) -> String {
        match self.label {
            Some(label) => format!("{}\u{1e}L{}", self.function, label),
            None => format!("{}\u{1e}U{}", self.function, self.ordinal),
        }
    }

    /// How the site reads in messages: `path::to::fn, step "charge"`.
    pub fn describe(&self) -> String {
        match self.label {
            Some(label) => format!("{}, {} {:?}", self.function, self.method, label),
            None => format!("{}, unnamed {} #{}", self.function, self.method, self.ordinal),
        }
    }
}

/// Computes an operation id with the `durable-id-v1` algorithm.
pub fn operation_id(parent_id: Option<&str>, site_key: &str, occurrence: u64) -> String {
    let hex = id_hex(parent_id, site_key, occurrence);
    std::str::from_utf8(&hex).expect("hex digits").to_owned()
}

/// [`operation_id`], as the shared string the engine passes around.
pub(crate) fn operation_id_shared(parent_id: Option<&str>, site_key: &str, occurrence: u64) -> Arc<str> {
    let hex = id_hex(parent_id, site_key, occurrence);
    Arc::from(std::str::from_utf8(&hex).expect("hex digits"))
}

/// Lowercase hexadecimal digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

fn id_hex(parent_id: Option<&str>, site_key: &str, occurrence: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ID_ALGORITHM.as_bytes());
    h.update([0x1f]);
    h.update(parent_id.unwrap_or("").as_bytes());
    h.update([0x1f]);
    h.update(site_key.as_bytes());
    h.update([0x1f]);
    let mut digits = [0u8; 20];
    h.update(decimal(occurrence, &mut digits));
    let digest = h.finalize();
    let mut out = [0u8; 32];
    for (i, b) in digest[..16].iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// `n` in decimal, written into `buf`, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The site key of a call made without a compile-time site: positional, per parent.
pub fn positional_key(n: u64) -> String {
    format!("#{n}")
}

/// The id of the `index`-th item of a map or branch of a parallel (0-based).
pub fn item_id(batch_id: &str, index: usize) -> String {
    operation_id(Some(batch_id), "#item", index as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values, computed independently (Python hashlib): these pin `durable-id-v1`. If one changes, every execution in flight
    // breaks; do not "fix" the expectation, fix the code.
    #[test]
    fn golden_ids() {
        let cases: &[(Option<&str>, &str, u64, &str)] = &[
            (None, "shop::checkout\u{1e}Lcharge", 0, "93f94f78e6d7289aacffc7781a2480b2"),
            (None, "shop::checkout\u{1e}Lcharge", 1, "298d6da2e22c6f51579f0da97c23e648"),
            (None, "shop::checkout\u{1e}U0", 0, "d76fa93809f12f8960bc91ecfefe7b6a"),
            (
                Some("0123456789abcdef0123456789abcdef"),
                "shop::checkout\u{1e}Lship",
                0,
                "8e9dec68a439a346703f1a2bdc37c187",
            ),
            (None, "#1", 0, "2147b705c00cc68bc53a95377ed2fa53"),
        ];
        for (parent, key, occ, want) in cases {
            assert_eq!(&operation_id(*parent, key, *occ), want, "{parent:?} {key} {occ}");
        }
    }

    #[test]
    fn ids_fit_the_wire() {
        let id = operation_id(Some("p"), "k", 3);
        assert_eq!(id.len(), 32);
        crate::model::validate_operation_id(&id).unwrap();
    }

    #[test]
    fn site_keys() {
        let s = Site::labelled("a::f", "step", "charge");
        assert_eq!(s.key(), "a::f\u{1e}Lcharge");
        assert_eq!(Site::unlabelled("a::f", "wait", 2).key(), "a::f\u{1e}U2");
        assert_eq!(s.describe(), "a::f, step \"charge\"");
    }
}
