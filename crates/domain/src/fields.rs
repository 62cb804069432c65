use std::collections::BTreeMap;

/// Validation errors by field, in the format Django REST framework uses:
/// `{"name": ["This field is required."]}`. Field paths of nested values are dotted (`tools.0.name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

pub const REQUIRED: &str = "This field is required.";
pub const NOT_NULL: &str = "This field may not be null.";
pub const BLANK: &str = "This field may not be blank.";

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no error was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, messages) in &self.0 {
            for message in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field}: {message}")?;
            }
        }
        Ok(())
    }
}

/// Checks a string's length in characters, with DRF's messages.
pub fn check_length(value: &str, max_chars: usize) -> Result<(), String> {
    let count = value.chars().count();
    if count > max_chars { Err(format!("Ensure this field has no more than {max_chars} characters.")) } else { Ok(()) }
}

/// A required, non-blank, bounded string.
pub fn non_blank(value: &str, max_chars: usize) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(BLANK.to_owned());
    }
    check_length(value, max_chars)?;
    Ok(value.to_owned())
}
