//! Provider functions as the protocol sees them (protocol 6.5 and later):
//! a signature of typed positional parameters and a return type, and the
//! error a call ends with. Terraform before 1.8 never asks for them.

use super::types::Type;

/// One function's signature and documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub parameters: Vec<Parameter>,
    /// Zero or more further arguments, each of this parameter's type.
    pub variadic_parameter: Option<Parameter>,
    pub return_type: Type,
    pub summary: String,
    /// Markdown.
    pub description: String,
    /// Empty unless the function is deprecated.
    pub deprecation_message: String,
}

impl Function {
    /// The parameter the argument at `index` is checked against.
    pub fn parameter_at(&self, index: usize) -> Option<&Parameter> {
        self.parameters
            .get(index)
            .or(self.variadic_parameter.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub ty: Type,
    /// When false, Terraform refuses a null argument before calling.
    pub allow_null_value: bool,
    /// When false, Terraform does not call with an unknown argument and
    /// takes the result as unknown.
    pub allow_unknown_values: bool,
    /// Markdown.
    pub description: String,
}

impl Parameter {
    /// A parameter that takes only known, non-null values.
    pub fn new(name: &str, ty: Type, description: &str) -> Parameter {
        Parameter {
            name: name.to_string(),
            ty,
            allow_null_value: false,
            allow_unknown_values: false,
            description: description.to_string(),
        }
    }
}

/// Why a call failed. Terraform shows `text` at the call, pointing at the
/// argument when `argument` is set, and ends it with a full stop itself:
/// the constructors drop the text's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub text: String,
    /// Index of the argument at fault.
    pub argument: Option<usize>,
}

impl FunctionError {
    /// An error with the whole call.
    pub fn new(text: impl Into<String>) -> FunctionError {
        FunctionError {
            text: without_full_stop(text.into()),
            argument: None,
        }
    }

    /// An error with the argument at `index`.
    pub fn argument(index: usize, text: impl Into<String>) -> FunctionError {
        FunctionError {
            text: without_full_stop(text.into()),
            argument: Some(index),
        }
    }
}

fn without_full_stop(mut text: String) -> String {
    while text.ends_with('.') {
        text.pop();
    }
    text
}
