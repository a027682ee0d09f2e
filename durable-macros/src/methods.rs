//! The durable methods of `DurableContext` that `#[durable]` knows: the one table that
//! says which calls are call sites and what their arguments mean. New operations add a
//! row here and nowhere else.

/// Which closure arguments of a call run with a context as their first parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextClosures {
    /// None.
    None,
    /// The argument at this index.
    Arg(usize),
    /// Every closure argument of every method chained after the call
    /// (`ctx.parallel("p").branch("a", async |c| ..)`).
    Chained,
}

/// One durable method.
#[derive(Debug)]
pub(crate) struct Method {
    /// The method's name.
    pub(crate) name: &'static str,
    /// Whether argument 0, when it is a string literal, labels the site.
    pub(crate) labelled: bool,
    /// The closures whose first parameter is a (child) context.
    pub(crate) context_closures: ContextClosures,
    /// The argument that is a step closure: its body runs once, outside replay, so no
    /// durable call may run in it and nondeterminism is welcome there.
    pub(crate) step_closure: Option<usize>,
}

const fn op(name: &'static str) -> Method {
    Method { name, labelled: true, context_closures: ContextClosures::None, step_closure: None }
}

const fn unlabelled(name: &'static str) -> Method {
    Method { labelled: false, ..op(name) }
}

const fn with_step(name: &'static str, arg: usize) -> Method {
    Method { step_closure: Some(arg), ..op(name) }
}

const fn with_child(name: &'static str, closures: ContextClosures) -> Method {
    Method { context_closures: closures, ..op(name) }
}

/// Every durable method.
pub(crate) static METHODS: &[Method] = &[
    with_step("step", 1),
    op("wait"),
    with_child("run_in_child_context", ContextClosures::Arg(1)),
    unlabelled("now"),
    unlabelled("random"),
    unlabelled("uuid"),
    op("create_callback"),
    with_step("wait_for_callback", 1),
    op("invoke"),
    with_child("map", ContextClosures::Arg(2)),
    with_child("parallel", ContextClosures::Chained),
    with_step("wait_for_condition", 2),
    op("patched"),
    op("all"),
    op("all_settled"),
    op("any"),
    op("race"),
];

/// The durable method called `name`, if there is one.
pub(crate) fn lookup(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(METHODS[i + 1..].iter().all(|n| n.name != m.name), "{} twice", m.name);
        }
    }

    #[test]
    fn a_closure_is_a_step_or_a_child_never_both() {
        for m in METHODS {
            if let (Some(step), ContextClosures::Arg(child)) = (m.step_closure, m.context_closures) {
                assert_ne!(step, child, "{}", m.name);
            }
        }
    }

    #[test]
    fn lookup_finds_rows() {
        assert_eq!(lookup("step").unwrap().step_closure, Some(1));
        assert!(!lookup("uuid").unwrap().labelled);
        assert!(lookup("clone").is_none());
    }
}
