//! Request bodies: read within a size limit, parsed as a JSON object, and taken apart field by
//! field with DRF's messages, so that every problem with a body is reported at once.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use domain::FieldErrors;
use domain::fields::{NOT_NULL, REQUIRED};
use serde_json::{Map, Value};

use crate::App;
use crate::error::ApiError;

/// Bodies larger than this answer 413; nothing this API takes comes near it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body that is a JSON object. An empty body counts as `{}`.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<App> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &App) -> Result<Self, ApiError> {
        let bytes = read(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(other) => Err(ApiError::field(
                "non_field_errors",
                format!("Invalid data. Expected a dictionary, but got {}.", json_type(&other)),
            )),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "parse_error", format!("JSON parse error - {e}"))),
        }
    }
}

/// Reads a whole request body: 413 past [`MAX_BODY_BYTES`], 408 (and the connection closed) when
/// it does not arrive within the server's body read timeout.
pub async fn read(body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        if crate::server::BodyTimedOut::caused(&e) {
            ApiError::request_timeout()
        } else {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("Request body is larger than {MAX_BODY_BYTES} bytes."),
            )
        }
    })
}

/// A JSON number that is a whole number within i64: `3`, and `3.0` too, as JSON Schema counts
/// integers (and as DRF's IntegerField reads them); `3.5` or `1e300` is none.
pub fn whole_number(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let x = value.as_f64().filter(|x| x.fract() == 0.0 && !value.is_u64())?;
    // Exactly representable bounds: -2^63 is an i64, 2^63 is not.
    (x >= -9_223_372_036_854_775_808.0 && x < 9_223_372_036_854_775_808.0).then_some(x as i64)
}

/// A JSON value's type as DRF names it in its messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Takes fields out of a JSON object, collecting errors; whatever is left at the end is unknown.
pub struct Fields {
    map: Map<String, Value>,
    errors: FieldErrors,
    prefix: String,
}

impl Fields {
    pub fn new(object: JsonObject) -> Self {
        Self::nested(object.0, "")
    }

    /// Fields of a nested object, whose errors are named `prefix.field`.
    pub fn nested(map: Map<String, Value>, prefix: &str) -> Self {
        Self { map, errors: FieldErrors::new(), prefix: prefix.to_owned() }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let name = format!("{}{field}", self.prefix);
        self.errors.add(name, message);
    }

    /// A field's value: `None` if absent; null is an error unless `nullable`.
    fn take(&mut self, field: &str, required: bool, nullable: bool) -> Option<Value> {
        match self.map.remove(field) {
            None => {
                if required {
                    self.error(field, REQUIRED);
                }
                None
            }
            Some(Value::Null) if !nullable => {
                self.error(field, NOT_NULL);
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A field's raw value, null included; `None` if absent. For values whose JSON type the
    /// caller checks itself.
    pub fn optional_value(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// Whether an error was already recorded for the field or anything inside it.
    pub fn has_error_under(&self, field: &str) -> bool {
        let name = format!("{}{field}", self.prefix);
        self.errors.0.keys().any(|k| k == &name || k.starts_with(&format!("{name}.")))
    }

    /// Whether an error was already recorded for the field.
    pub fn has_error(&self, field: &str) -> bool {
        self.errors.0.contains_key(&format!("{}{field}", self.prefix))
    }

    fn string_of(&mut self, field: &str, value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            _ => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    /// A string that may be set to null: absent `None`, null `Some(None)`.
    pub fn optional_nullable_str(&mut self, field: &str) -> Option<Option<String>> {
        match self.take(field, false, true)? {
            Value::Null => Some(None),
            v => self.string_of(field, v).map(Some),
        }
    }

    pub fn required_str(&mut self, field: &str) -> Option<String> {
        self.take(field, true, false).and_then(|v| self.string_of(field, v))
    }

    pub fn optional_str(&mut self, field: &str) -> Option<String> {
        self.take(field, false, false).and_then(|v| self.string_of(field, v))
    }

    fn integer_of(&mut self, field: &str, value: Value) -> Option<i64> {
        match whole_number(&value) {
            Some(n) => Some(n),
            None => {
                self.error(field, "A valid integer is required.");
                None
            }
        }
    }

    pub fn required_int(&mut self, field: &str) -> Option<i64> {
        self.take(field, true, false).and_then(|v| self.integer_of(field, v))
    }

    pub fn optional_int(&mut self, field: &str) -> Option<i64> {
        self.take(field, false, false).and_then(|v| self.integer_of(field, v))
    }

    /// An id that may be set to null: absent `None`, null `Some(None)`.
    pub fn optional_nullable_id(&mut self, field: &str) -> Option<Option<u64>> {
        match self.take(field, false, true)? {
            Value::Null => Some(None),
            v => match whole_number(&v).and_then(|n| u64::try_from(n).ok()) {
                Some(id) => Some(Some(id)),
                None => {
                    self.error(field, "A valid integer is required.");
                    None
                }
            },
        }
    }

    pub fn optional_bool(&mut self, field: &str) -> Option<bool> {
        match self.take(field, false, false)? {
            Value::Bool(b) => Some(b),
            _ => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    pub fn optional_list(&mut self, field: &str) -> Option<Vec<Value>> {
        match self.take(field, false, false)? {
            Value::Array(items) => Some(items),
            other => {
                self.error(field, format!("Expected a list of items but got type \"{}\".", json_type(&other)));
                None
            }
        }
    }

    pub fn optional_object(&mut self, field: &str) -> Option<Map<String, Value>> {
        match self.take(field, false, false)? {
            Value::Object(map) => Some(map),
            other => {
                self.error(field, format!("Expected a dictionary of items but got type \"{}\".", json_type(&other)));
                None
            }
        }
    }

    /// Parses a value with a domain parser, recording its error under the field.
    pub fn parse<T, R>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parser: impl FnOnce(R) -> Result<T, String>,
    ) -> Option<T> {
        match parser(raw?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(field, e);
                None
            }
        }
    }

    /// Merges the errors of a nested object.
    pub fn absorb(&mut self, nested: Fields) {
        let errors = nested.into_errors();
        for (field, messages) in errors.0 {
            for m in messages {
                self.errors.add(field.clone(), m);
            }
        }
    }

    fn into_errors(mut self) -> FieldErrors {
        let unknown: Vec<String> = self.map.keys().cloned().collect();
        for field in unknown {
            self.error(&field, "Unknown field.");
        }
        self.errors
    }

    /// Ends parsing: unknown fields are errors; `value` is returned only if nothing failed.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        let errors = self.into_errors();
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        value().ok_or_else(|| ApiError::invalid(FieldErrors::single("non_field_errors", "Invalid data.")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::whole_number;

    #[test]
    fn a_whole_number_is_an_integer_however_it_is_written() {
        assert_eq!(whole_number(&json!(3)), Some(3));
        assert_eq!(whole_number(&json!(-3)), Some(-3));
        assert_eq!(whole_number(&json!(28668.0)), Some(28668));
        assert_eq!(whole_number(&json!(-0.0)), Some(0));
        for not_whole in [json!(3.5), json!(1e300), json!(u64::MAX), json!("3"), json!(true), json!(null)] {
            assert_eq!(whole_number(&not_whole), None, "{not_whole}");
        }
    }
}
