//! Failures as they travel in replies: a kind (which the gateway maps to an HTTP status), a
//! stable code and a human detail.

use domain::FieldErrors;
use domain::directory::DirectoryError;
use domain::org::{OrgError, Resource};

use crate::pb::{Failure, FailureKind, FieldError, Reply, reply};

impl Failure {
    pub fn new(kind: FailureKind, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: kind as i32,
            code: code.to_owned(),
            detail: detail.into(),
            field_errors: Vec::new(),
            retry_after_seconds: None,
        }
    }

    pub fn invalid(errors: FieldErrors) -> Self {
        Self {
            kind: FailureKind::Invalid as i32,
            code: "invalid".to_owned(),
            detail: errors.to_string(),
            field_errors: errors.0.into_iter().map(|(field, messages)| FieldError { field, messages }).collect(),
            retry_after_seconds: None,
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(FailureKind::Internal, "internal_error", detail)
    }

    pub fn field_errors(&self) -> FieldErrors {
        FieldErrors(self.field_errors.iter().map(|e| (e.field.clone(), e.messages.clone())).collect())
    }
}

impl Reply {
    pub fn with(result: reply::Result) -> Self {
        Self { result: Some(result) }
    }

    pub fn failure(failure: Failure) -> Self {
        Self::with(reply::Result::Failure(failure))
    }
}

pub fn not_found(resource: Resource) -> Failure {
    let (code, detail) = match resource {
        Resource::Org => ("org_not_found", "Organization not found."),
        Resource::ApiKey => ("api_key_not_found", "API key not found."),
        Resource::Agent => ("agent_not_found", "Agent not found."),
        Resource::VoipConnection => ("voip_connection_not_found", "VoIP connection not found."),
        Resource::PhoneNumber => ("phone_number_not_found", "Phone number not found."),
    };
    Failure::new(FailureKind::NotFound, code, detail)
}

impl From<OrgError> for Failure {
    fn from(error: OrgError) -> Self {
        match error {
            OrgError::NotFound(resource) => not_found(resource),
            OrgError::AlreadyExists => {
                Failure::new(FailureKind::Conflict, "org_exists", "Organization already exists.")
            }
            OrgError::Invalid(errors) => Failure::invalid(errors),
            OrgError::NumberExists(number) => Failure::new(
                FailureKind::Conflict,
                "phone_number_exists",
                format!("{number} is already registered to this organization."),
            ),
            OrgError::ConnectionInUse { number } => Failure::new(
                FailureKind::Conflict,
                "voip_connection_in_use",
                format!("This VoIP connection backs {number}; delete that phone number first."),
            ),
            OrgError::AgentChanged { updated_at } => Failure::new(
                FailureKind::Conflict,
                "agent_changed",
                format!(
                    "The agent was changed since if_updated_at (it was last updated at {updated_at}); read it \
                     again and retry."
                ),
            ),
            OrgError::QuotaExceeded { quota, limit } => Failure::new(
                FailureKind::Forbidden,
                "quota_exceeded",
                format!(
                    "Quota exceeded: this organization may have at most {limit} {} ({}); ask to raise it.",
                    quota.counts(),
                    quota.field()
                ),
            ),
            OrgError::DemoNumberNotVerifiable => Failure::new(
                FailureKind::Conflict,
                "demo_number",
                "Demo numbers are the platform's: they need no verification and place no outbound calls.",
            ),
        }
    }
}

impl From<DirectoryError> for Failure {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::NumberTaken(number) => Failure::new(
                FailureKind::Conflict,
                "phone_number_taken",
                format!("{number} is already registered to another organization."),
            ),
            DirectoryError::ReservedForDemo(number) => Failure::invalid(FieldErrors::single(
                "number",
                format!("{number} is in the range reserved for demo numbers."),
            )),
            DirectoryError::DemoPoolExhausted => Failure::new(
                FailureKind::Unavailable,
                "demo_numbers_exhausted",
                "No demo numbers are left to provision.",
            ),
        }
    }
}
