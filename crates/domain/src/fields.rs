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

pub const INVISIBLE: &str = "This field may not contain control or invisible formatting characters.";
pub const CONTROL: &str = "This field may not contain control characters.";

/// Refuses what a person cannot see or that changes how the text around it is shown: control
/// characters (general category Cc: NUL, CR, LF, ...) and format characters (Cf: the bidi
/// overrides and isolates, zero-width spaces and joiners, the soft hyphen, the byte order
/// mark). A name with them can pass for another name in a dashboard, a log or an invoice.
/// Every name and label the API stores goes through here.
pub fn refuse_invisible(value: &str) -> Result<(), String> {
    if value.chars().any(is_hidden) { Err(INVISIBLE.to_owned()) } else { Ok(()) }
}

/// Whether `refuse_invisible` refuses a character.
pub fn is_hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.is_control() || c.general_category() == GeneralCategory::Format
}

/// The characters `refuse_invisible` refuses, as ranges in order: what the API's schema says a
/// name may not contain, so the document and the rule cannot disagree.
pub fn hidden_ranges() -> Vec<std::ops::RangeInclusive<char>> {
    let mut ranges: Vec<std::ops::RangeInclusive<char>> = Vec::new();
    for c in (0..=char::MAX as u32).filter_map(char::from_u32).filter(|c| is_hidden(*c)) {
        match ranges.last_mut() {
            Some(last) if (*last.end() as u32) + 1 == c as u32 => *last = *last.start()..=c,
            _ => ranges.push(c..=c),
        }
    }
    ranges
}

/// Refuses control characters (Cc), for values written into a protocol's messages (SIP
/// headers), where a CR or LF would end a header and start another the sender wrote.
pub fn refuse_control(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) { Err(CONTROL.to_owned()) } else { Ok(()) }
}

/// A name or label that may be blank: bounded, and with nothing hidden in it.
pub fn name(value: &str, max_chars: usize) -> Result<String, String> {
    check_length(value, max_chars)?;
    refuse_invisible(value)?;
    Ok(value.to_owned())
}

/// A required name: non-blank, bounded, and with nothing hidden in it.
pub fn required_name(value: &str, max_chars: usize) -> Result<String, String> {
    let value = non_blank(value, max_chars)?;
    refuse_invisible(&value)?;
    Ok(value)
}
