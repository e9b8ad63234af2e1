//! The one error type of the policy engine: what went wrong, and where.

use thiserror::Error;

/// Why a policy document or a rendering input was rejected.
///
/// Every variant names the place of the problem (a JSON path such as
/// `Statement[2].Principal`, or a spec field such as `shareWith.accounts[0]`), so the
/// message can go into a status condition as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is not JSON (or YAML) at all.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// The text is JSON, but not a policy document.
    #[error("{path}: {message}")]
    Structure { path: String, message: String },
    /// A rendering input (a spec field) is invalid.
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    /// Serialising a document failed; only possible through a bug.
    #[error("could not serialise the policy: {0}")]
    Serialize(String),
}

impl PolicyError {
    pub(crate) fn structure(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Structure {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The JSON path or spec field the error is about, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            PolicyError::Structure { path, .. } => Some(path),
            PolicyError::InvalidInput { field, .. } => Some(field),
            PolicyError::Syntax { .. } | PolicyError::Serialize(_) => None,
        }
    }
}
