//! Placeholder bindings shared by one requirement's phases: its `Variables`, the values the
//! history matcher binds (`${ID1}`), and every later substitution (the input, the expected
//! result, callback payloads, expected logs).

use std::sync::LazyLock;

use rand::RngExt as _;
use regex::Regex;

use super::pyvalue::PyValue;

/// `${GEN_STR:n}`: a random string of `n` lowercase letters and digits.
static GEN_STR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\$\{GEN_STR:(\d+)\}$").expect("valid regex"));

/// A reference to a bound name inside a longer text: `Hello, ${INPUT_1}!`.
static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("valid regex"));

const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Name to value bindings, in the order they were made.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    bindings: Vec<(String, PyValue)>,
}

impl Placeholders {
    /// No bindings.
    pub fn new() -> Self {
        Placeholders::default()
    }

    /// Binds a requirement's `Variables`: `${GEN_STR:n}` generates a random string, any
    /// other string binds as it is, and a non-string binds as its `str()`.
    pub fn resolve_variables(&mut self, variables: Option<&PyValue>) {
        let Some(PyValue::Dict(vars)) = variables else { return };
        for (name, value) in vars {
            let bound = match value {
                PyValue::Str(s) => match GEN_STR.captures(s) {
                    Some(c) => PyValue::Str(random_string(c[1].parse().unwrap_or(0))),
                    None => PyValue::Str(s.clone()),
                },
                other => PyValue::Str(other.py_str()),
            };
            self.set(name, bound);
        }
    }

    fn set(&mut self, name: &str, value: PyValue) {
        match self.bindings.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.bindings.push((name.to_owned(), value)),
        }
    }

    /// Binds `name` on first sight.
    pub fn bind(&mut self, name: &str, value: PyValue) {
        if !self.has(name) {
            self.bindings.push((name.to_owned(), value));
        }
    }

    /// The value bound to `name`.
    pub fn get(&self, name: &str) -> Option<&PyValue> {
        self.bindings.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether `name` is bound.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every binding, in the order made.
    pub fn bindings(&self) -> &[(String, PyValue)] {
        &self.bindings
    }

    /// Replaces every `${NAME}` whose name is bound, in strings at any depth; unbound
    /// references stay for a later phase to resolve.
    pub fn substitute(&self, data: &PyValue) -> PyValue {
        match data {
            PyValue::Str(s) => PyValue::Str(self.substitute_str(s)),
            PyValue::Dict(d) => PyValue::Dict(d.iter().map(|(k, v)| (k.clone(), self.substitute(v))).collect()),
            PyValue::List(l) => PyValue::List(l.iter().map(|v| self.substitute(v)).collect()),
            other => other.clone(),
        }
    }

    /// [`Placeholders::substitute`] on one string.
    pub fn substitute_str(&self, text: &str) -> String {
        REFERENCE
            .replace_all(text, |c: &regex::Captures<'_>| match self.get(&c[1]) {
                Some(v) => v.py_str(),
                None => c[0].to_owned(),
            })
            .into_owned()
    }
}

/// A random string of lowercase letters and digits.
pub fn random_string(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(yaml: &str) -> PyValue {
        PyValue::from_yaml(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn variables_generate_or_bind_literals() {
        let mut p = Placeholders::new();
        p.resolve_variables(Some(&vars("A: ${GEN_STR:8}\nB: literal\nC: 42\nD: ${NOT_GEN}")));
        let a = p.get("A").unwrap().as_str().unwrap();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{a}");
        assert_eq!(p.get("B"), Some(&PyValue::str("literal")));
        assert_eq!(p.get("C"), Some(&PyValue::str("42")), "non-strings bind as their str()");
        assert_eq!(p.get("D"), Some(&PyValue::str("${NOT_GEN}")));
        let mut q = Placeholders::new();
        q.resolve_variables(Some(&vars("A: ${GEN_STR:8}")));
        assert_ne!(q.get("A"), p.get("A"), "each run draws new values");
    }

    #[test]
    fn substitution_replaces_bound_references_only() {
        let mut p = Placeholders::new();
        p.bind("NAME", PyValue::str("ada"));
        p.bind("N", PyValue::Int(3));
        let data = vars("greeting: 'Hello, ${NAME}!'\nlist: ['${N}', '${LATER}', 7]\nexact: ${NAME}");
        assert_eq!(
            p.substitute(&data).json_dumps(),
            r#"{"greeting": "Hello, ada!", "list": ["3", "${LATER}", 7], "exact": "ada"}"#
        );
    }

    #[test]
    fn binding_is_first_sight_only() {
        let mut p = Placeholders::new();
        p.bind("ID", PyValue::str("a"));
        p.bind("ID", PyValue::str("b"));
        assert_eq!(p.get("ID"), Some(&PyValue::str("a")));
    }
}
