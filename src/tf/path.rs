//! Attribute paths: where in a configuration a diagnostic points.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An attribute or nested block name.
    Attribute(String),
    /// A map key (or a set element identified by a string).
    ElementKeyString(String),
    /// A list or tuple index.
    ElementKeyInt(i64),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    /// A path to a top-level attribute.
    pub fn root(name: &str) -> Self {
        AttributePath(vec![PathStep::Attribute(name.to_string())])
    }
    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attribute(name.to_string()));
        self
    }
    pub fn index(mut self, i: i64) -> Self {
        self.0.push(PathStep::ElementKeyInt(i));
        self
    }
    pub fn key(mut self, k: &str) -> Self {
        self.0.push(PathStep::ElementKeyString(k.to_string()));
        self
    }
}

/// `rotation_rules[0].automatically_after_days`, as Terraform prints paths.
impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attribute(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attribute(a) => write!(f, ".{a}")?,
                PathStep::ElementKeyString(k) => write!(f, "[{k:?}]")?,
                PathStep::ElementKeyInt(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
