//! The request a message carries, as every actor handles it: its id travels in the
//! `x-request-id` header, names the span the actor handles it in, and becomes the correlation
//! id of the events it causes.

/// The header a request's id travels in, from the gateway through every service.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The context of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    request_id: Option<String>,
}

impl RequestContext {
    /// The context `message` carries (none if it names no request).
    pub fn of(message: &bus::Message) -> Self {
        Self { request_id: message.headers.get(REQUEST_ID_HEADER).cloned() }
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    pub fn into_request_id(self) -> Option<String> {
        self.request_id
    }

    /// The span a service's partition handles the request in.
    pub fn span(&self, service: &'static str, partition: u32) -> tracing::Span {
        tracing::info_span!("request", service, partition, request_id = self.request_id())
    }
}
