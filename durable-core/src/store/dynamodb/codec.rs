//! Items as JSON text, and the large strings moved out of it into chunk items.
//!
//! Records, stored operations and events are kept as their serde JSON (the model's AWS
//! field names) in one string attribute. When that text is too long for an item, its
//! longest strings (payloads: results, inputs, error messages) are replaced by markers
//! `{"$durable.chunk": <hash>, "n": <pieces>, "len": <bytes>}` and stored apart, in chunk
//! items of at most [`CHUNK_BYTES`] keyed by the string's SHA-256: the same payload on an
//! operation and on its event is stored once, and writing it again is harmless.
//!
//! A marker can never be mistaken for data: the model has no field where a user value is
//! an object (payloads are JSON *text*, carried as strings), and only objects whose one
//! key is `$durable.chunk` are markers.

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{StoreError, StoreResult};

/// The longest JSON text kept in an item. Twice this (an item holding its committed text
/// and the text a split commit writes ahead) stays below DynamoDB's 400 KB item limit and
/// moto's 405,000 bytes, with room for the keys and the other attributes.
pub(super) const INLINE_MAX: usize = 180_000;

/// The longest piece of a chunked string (bytes of UTF-8).
pub(super) const CHUNK_BYTES: usize = 300_000;

const MARKER: &str = "$durable.chunk";

/// Strings shorter than this are never moved out: a marker costs about 100 bytes.
const MIN_CHUNKED: usize = 1024;

/// A string stored apart from its item.
#[derive(Debug, Clone)]
pub(super) struct Chunked {
    /// The first 32 hex digits of the string's SHA-256.
    pub(super) hash: String,
    pub(super) text: String,
}

impl Chunked {
    /// The pieces, cut at character boundaries.
    pub(super) fn pieces(&self) -> Vec<&str> {
        split(&self.text)
    }
}

fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / CHUNK_BYTES + 1);
    let mut rest = text;
    while rest.len() > CHUNK_BYTES {
        let mut cut = CHUNK_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest);
    }
    out
}

/// An item's JSON text and the strings moved out of it.
#[derive(Debug)]
pub(super) struct Encoded {
    pub(super) json: String,
    pub(super) chunks: Vec<Chunked>,
}

/// Serialises `value`, refusing any string longer than `max_payload` bytes, and moves
/// its longest strings into chunks if the text exceeds [`INLINE_MAX`]. `what` names the
/// value in errors.
pub(super) fn encode<T: Serialize + ?Sized>(
    value: &T,
    what: &dyn Fn() -> String,
    max_payload: usize,
) -> StoreResult<Encoded> {
    let json = serde_json::to_string(value)
        .map_err(|e| StoreError::Invalid(format!("{} cannot be serialised: {e}", what())))?;
    if json.len() <= INLINE_MAX.min(max_payload) {
        return Ok(Encoded { json, chunks: Vec::new() });
    }
    let mut tree = serde_json::to_value(value)
        .map_err(|e| StoreError::Invalid(format!("{} cannot be serialised: {e}", what())))?;
    let mut lengths = Vec::new();
    visit_strings(&mut tree, &mut |s| {
        lengths.push(s.len());
        None
    });
    if let Some(&longest) = lengths.iter().max()
        && longest > max_payload
    {
        return Err(StoreError::TooLarge(format!(
            "{}: a payload of {longest} bytes exceeds the DynamoDB store's limit of {max_payload} bytes",
            what()
        )));
    }
    if json.len() <= INLINE_MAX {
        return Ok(Encoded { json, chunks: Vec::new() });
    }
    // Move out the fewest (longest) strings that bring the text under the limit.
    lengths.retain(|&l| l >= MIN_CHUNKED);
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    let excess = json.len() - INLINE_MAX;
    let mut freed = 0;
    let mut threshold = MIN_CHUNKED;
    for l in &lengths {
        threshold = *l;
        freed += l.saturating_sub(120);
        if freed >= excess {
            break;
        }
    }
    let mut chunks: Vec<Chunked> = Vec::new();
    visit_strings(&mut tree, &mut |s| {
        if s.len() < threshold {
            return None;
        }
        let hash = hash_of(s);
        let marker = marker(&hash, split(s).len(), s.len());
        if !chunks.iter().any(|c| c.hash == hash) {
            chunks.push(Chunked { hash, text: s.to_owned() });
        }
        Some(marker)
    });
    let json = serde_json::to_string(&tree)
        .map_err(|e| StoreError::Invalid(format!("{} cannot be serialised: {e}", what())))?;
    if json.len() > INLINE_MAX {
        return Err(StoreError::TooLarge(format!(
            "{} is {} bytes even with its large strings stored apart; the DynamoDB store keeps at most \
             {INLINE_MAX} bytes of it in one item",
            what(),
            json.len()
        )));
    }
    Ok(Encoded { json, chunks })
}

fn hash_of(s: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(s.as_bytes());
    let mut hex = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn marker(hash: &str, pieces: usize, len: usize) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(MARKER.to_owned(), Value::String(hash.to_owned()));
    m.insert("n".to_owned(), Value::from(pieces));
    m.insert("len".to_owned(), Value::from(len));
    Value::Object(m)
}

/// Calls `f` on every string value (not object keys); a returned value replaces the string.
fn visit_strings(v: &mut Value, f: &mut dyn FnMut(&str) -> Option<Value>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *v = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| visit_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| visit_strings(i, f)),
        _ => {}
    }
}

/// A chunked string an item refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ChunkRef {
    pub(super) hash: String,
    pub(super) pieces: usize,
    pub(super) len: usize,
}

fn as_marker(v: &Value) -> Option<ChunkRef> {
    let Value::Object(m) = v else { return None };
    let hash = m.get(MARKER)?.as_str()?;
    Some(ChunkRef {
        hash: hash.to_owned(),
        pieces: usize::try_from(m.get("n")?.as_u64()?).ok()?,
        len: usize::try_from(m.get("len")?.as_u64()?).ok()?,
    })
}

/// An item's JSON text, parsed as far as needed: plain text, or a tree with markers.
#[derive(Debug)]
pub(super) enum Parsed {
    Plain(String),
    Chunked(Value, Vec<ChunkRef>),
}

/// Parses an item's text; `where_` names the item in errors.
pub(super) fn parse(json: String, where_: &dyn Fn() -> String) -> StoreResult<Parsed> {
    if !json.contains("\"$durable.chunk\"") {
        return Ok(Parsed::Plain(json));
    }
    let tree: Value =
        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("{} is not valid JSON: {e}", where_())))?;
    let mut refs = Vec::new();
    collect_refs(&tree, &mut refs);
    Ok(Parsed::Chunked(tree, refs))
}

fn collect_refs(v: &Value, out: &mut Vec<ChunkRef>) {
    if let Some(r) = as_marker(v) {
        if !out.contains(&r) {
            out.push(r);
        }
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

impl Parsed {
    /// The chunked strings this item needs.
    pub(super) fn refs(&self) -> &[ChunkRef] {
        match self {
            Parsed::Plain(_) => &[],
            Parsed::Chunked(_, refs) => refs,
        }
    }

    /// Deserialises the item, putting the chunked strings (by hash) back in place.
    pub(super) fn finish<T: DeserializeOwned>(
        self,
        texts: &HashMap<String, String>,
        where_: &dyn Fn() -> String,
    ) -> StoreResult<T> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("{} cannot be read back: {e}", where_()));
        match self {
            Parsed::Plain(json) => serde_json::from_str(&json).map_err(corrupt),
            Parsed::Chunked(mut tree, _) => {
                let mut missing = None;
                restore(&mut tree, texts, &mut missing);
                if let Some(hash) = missing {
                    return Err(StoreError::Corrupt(format!("{} refers to chunk {hash}, which is missing", where_())));
                }
                serde_json::from_value(tree).map_err(corrupt)
            }
        }
    }
}

fn restore(v: &mut Value, texts: &HashMap<String, String>, missing: &mut Option<String>) {
    if let Some(r) = as_marker(v) {
        match texts.get(&r.hash) {
            Some(t) => *v = Value::String(t.clone()),
            None => *missing = Some(r.hash),
        }
        return;
    }
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| restore(i, texts, missing)),
        Value::Object(map) => map.values_mut().for_each(|i| restore(i, texts, missing)),
        _ => {}
    }
}
