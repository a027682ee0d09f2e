//! Values with Python's semantics.
//!
//! AWS's validator is Python: it loads the YAML with PyYAML, compares with `==`, matches
//! regexes against `str(value)`, and sends callback payloads as `json.dumps(value)`. To
//! decide exactly as it does, the harness converts both sides (the YAML's expectations and
//! our history's JSON) into [`PyValue`] and uses Python's rules: `1 == 1.0 == True`,
//! dictionaries compare without regard to order, `str(True)` is `True`, and `json.dumps`
//! writes `{"a": 1}` with a space after each separator and escapes non-ASCII characters.

use std::fmt::Write as _;

/// A Python value as PyYAML or `json.loads` produce them.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int`.
    Int(i128),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `dict`, in insertion order (the document's order).
    Dict(Vec<(String, PyValue)>),
}

impl PyValue {
    /// A `str`.
    pub fn str(s: impl Into<String>) -> PyValue {
        PyValue::Str(s.into())
    }

    /// Converts JSON (our side: history events, results, log records).
    pub fn from_json(v: &serde_json::Value) -> PyValue {
        match v {
            serde_json::Value::Null => PyValue::None,
            serde_json::Value::Bool(b) => PyValue::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    PyValue::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    PyValue::Int(i128::from(u))
                } else {
                    PyValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => PyValue::Str(s.clone()),
            serde_json::Value::Array(a) => PyValue::List(a.iter().map(PyValue::from_json).collect()),
            serde_json::Value::Object(m) => {
                PyValue::Dict(m.iter().map(|(k, v)| (k.clone(), PyValue::from_json(v))).collect())
            }
        }
    }

    /// Converts YAML (AWS's side: the requirement files), keeping mapping order.
    pub fn from_yaml(v: &serde_yaml_ng::Value) -> PyValue {
        use serde_yaml_ng::Value as Y;
        match v {
            Y::Null => PyValue::None,
            Y::Bool(b) => PyValue::Bool(*b),
            Y::Number(n) => {
                if let Some(i) = n.as_i64() {
                    PyValue::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    PyValue::Int(i128::from(u))
                } else {
                    PyValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Y::String(s) => PyValue::Str(s.clone()),
            Y::Sequence(s) => PyValue::List(s.iter().map(PyValue::from_yaml).collect()),
            Y::Mapping(m) => PyValue::Dict(
                m.iter()
                    .map(|(k, v)| {
                        let key = match PyValue::from_yaml(k) {
                            PyValue::Str(s) => s,
                            other => other.py_str(),
                        };
                        (key, PyValue::from_yaml(v))
                    })
                    .collect(),
            ),
            Y::Tagged(t) => PyValue::from_yaml(&t.value),
        }
    }

    /// Converts to JSON (an `int` beyond 64 bits becomes a float; NaN becomes `null`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PyValue::None => serde_json::Value::Null,
            PyValue::Bool(b) => serde_json::Value::Bool(*b),
            PyValue::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    v.into()
                } else if let Ok(v) = u64::try_from(*i) {
                    v.into()
                } else {
                    serde_json::Number::from_f64(*i as f64).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
            }
            PyValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            PyValue::Str(s) => serde_json::Value::String(s.clone()),
            PyValue::List(l) => serde_json::Value::Array(l.iter().map(PyValue::to_json).collect()),
            PyValue::Dict(d) => serde_json::Value::Object(d.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// The value under `key` of a `dict` (the last one, as a Python dict keeps the last).
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(d) => d.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python's truthiness (`bool(value)`).
    pub fn truthy(&self) -> bool {
        match self {
            PyValue::None => false,
            PyValue::Bool(b) => *b,
            PyValue::Int(i) => *i != 0,
            PyValue::Float(f) => *f != 0.0,
            PyValue::Str(s) => !s.is_empty(),
            PyValue::List(l) => !l.is_empty(),
            PyValue::Dict(d) => !d.is_empty(),
        }
    }

    /// Python's `==`.
    pub fn py_eq(&self, other: &PyValue) -> bool {
        use PyValue as P;
        match (self, other) {
            (P::None, P::None) => true,
            (P::Str(a), P::Str(b)) => a == b,
            (P::List(a), P::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y)),
            (P::Dict(a), P::Dict(b)) => {
                let (a, b) = (dedup(a), dedup(b));
                a.len() == b.len() && a.iter().all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v.py_eq(v2)))
            }
            _ => match (self.number(), other.number()) {
                (Some(Num::Int(a)), Some(Num::Int(b))) => a == b,
                (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
                _ => false,
            },
        }
    }

    fn number(&self) -> Option<Num> {
        match self {
            PyValue::Bool(b) => Some(Num::Int(i128::from(*b))),
            PyValue::Int(i) => Some(Num::Int(*i)),
            PyValue::Float(f) => Some(Num::Float(*f)),
            _ => None,
        }
    }

    /// Python's `str(value)`.
    pub fn py_str(&self) -> String {
        match self {
            PyValue::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python's `repr(value)`.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            PyValue::None => out.push_str("None"),
            PyValue::Bool(true) => out.push_str("True"),
            PyValue::Bool(false) => out.push_str("False"),
            PyValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PyValue::Float(f) => out.push_str(&float_repr(*f)),
            PyValue::Str(s) => str_repr(s, out),
            PyValue::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_repr(out);
                }
                out.push(']');
            }
            PyValue::Dict(d) => {
                out.push('{');
                for (i, (k, v)) in dedup(d).iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    str_repr(k, out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators, keys in
    /// insertion order, non-ASCII escaped, `NaN` and `Infinity` allowed.
    pub fn json_dumps(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            PyValue::None => out.push_str("null"),
            PyValue::Bool(true) => out.push_str("true"),
            PyValue::Bool(false) => out.push_str("false"),
            PyValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PyValue::Float(f) if f.is_nan() => out.push_str("NaN"),
            PyValue::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
            PyValue::Float(f) => out.push_str(&float_repr(*f)),
            PyValue::Str(s) => json_str(s, out),
            PyValue::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            PyValue::Dict(d) => {
                out.push('{');
                for (i, (k, v)) in dedup(d).iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_str(k, out);
                    out.push_str(": ");
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// Python's `json.loads(text)`, or `None` when the text is not JSON.
    pub fn json_loads(text: &str) -> Option<PyValue> {
        serde_json::from_str::<serde_json::Value>(text).ok().map(|v| PyValue::from_json(&v))
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A dict's entries as Python holds them: one per key, the last value winning, in the
/// position of the key's first occurrence.
fn dedup(d: &[(String, PyValue)]) -> Vec<(&str, &PyValue)> {
    let mut out: Vec<(&str, &PyValue)> = Vec::with_capacity(d.len());
    for (k, v) in d {
        match out.iter_mut().find(|(k2, _)| *k2 == k.as_str()) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// `repr(float)`: the shortest digits that round-trip, positional for exponents from -4 to
/// 15, scientific (`1e+16`, `1.5e-07`) otherwise; integral values keep a `.0`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-7", "-1e16".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let mut s = String::from(sign);
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
        s
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

/// `repr(str)`: single quotes unless the text has a single quote and no double quote.
fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// A JSON string as `json.dumps` writes it (`ensure_ascii=True`).
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && (c as u32) >= 0x20 => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(json: &str) -> PyValue {
        PyValue::json_loads(json).unwrap()
    }

    #[test]
    fn equality_follows_python() {
        assert!(PyValue::Int(1).py_eq(&PyValue::Float(1.0)));
        assert!(PyValue::Bool(true).py_eq(&PyValue::Int(1)));
        assert!(!PyValue::Int(2).py_eq(&PyValue::str("2")), "a number never equals a string");
        assert!(!PyValue::None.py_eq(&PyValue::Int(0)));
        assert!(py(r#"{"a": 1, "b": [1, 2]}"#).py_eq(&py(r#"{"b": [1.0, 2], "a": true}"#)));
        assert!(!py(r#"{"a": 1}"#).py_eq(&py(r#"{"a": 1, "b": 2}"#)));
        assert!(!py("[1, 2]").py_eq(&py("[2, 1]")));
    }

    #[test]
    fn str_and_repr_follow_python() {
        assert_eq!(PyValue::Int(3).py_str(), "3");
        assert_eq!(PyValue::Bool(true).py_str(), "True");
        assert_eq!(PyValue::None.py_str(), "None");
        assert_eq!(PyValue::str("it's").py_repr(), "\"it's\"");
        assert_eq!(py(r#"{"k": ["v", 1, null, false]}"#).py_str(), "{'k': ['v', 1, None, False]}");
        for (f, want) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123.456, "123.456"),
            (-2.5e20, "-2.5e+20"),
            (1e15, "1000000000000000.0"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn json_dumps_follows_python() {
        let v = PyValue::Dict(vec![
            ("status".into(), PyValue::str("approved")),
            ("n".into(), PyValue::Int(42)),
            ("x".into(), PyValue::List(vec![PyValue::Float(1.0), PyValue::None])),
            ("é".into(), PyValue::str("😀\"")),
        ]);
        assert_eq!(v.json_dumps(), r#"{"status": "approved", "n": 42, "x": [1.0, null], "\u00e9": "\ud83d\ude00\""}"#);
        assert_eq!(PyValue::str("abc").json_dumps(), "\"abc\"");
    }

    #[test]
    fn yaml_keeps_mapping_order() {
        let y: serde_yaml_ng::Value = serde_yaml_ng::from_str("b: 1\na: [x, 2.5]\nc:\n").unwrap();
        let v = PyValue::from_yaml(&y);
        assert_eq!(v.json_dumps(), r#"{"b": 1, "a": ["x", 2.5], "c": null}"#);
    }
}
