use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// An event about to be appended: its type, its schema version and its payload, which is
/// MessagePack with named fields so that adding a field never breaks reading old events.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
    pub causation_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl NewEvent {
    pub fn encode<T: Serialize>(event_type: impl Into<String>, payload: &T) -> Result<Self, rmp_serde::encode::Error> {
        Ok(Self {
            event_type: event_type.into(),
            schema_version: 1,
            payload: rmp_serde::to_vec_named(payload)?,
            causation_id: None,
            correlation_id: None,
        })
    }

    /// Marks what caused the event (a command or request id) and the conversation it belongs to.
    pub fn caused_by(mut self, causation_id: Option<String>, correlation_id: Option<String>) -> Self {
        self.causation_id = causation_id;
        self.correlation_id = correlation_id;
        self
    }

    pub(crate) fn record(self, stream: &str, version: u64, position: u64, recorded_at_ms: i64) -> RecordedEvent {
        RecordedEvent {
            stream: stream.to_owned(),
            version,
            position,
            event_type: self.event_type,
            schema_version: self.schema_version,
            recorded_at_ms,
            causation_id: self.causation_id,
            correlation_id: self.correlation_id,
            payload: self.payload,
            previous_hash: Vec::new(),
        }
    }
}

/// The envelope an event is stored in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub stream: String,
    /// 1-based position within the stream.
    pub version: u64,
    /// 1-based position within the partition's log.
    pub position: u64,
    pub event_type: String,
    pub schema_version: u16,
    pub recorded_at_ms: i64,
    pub causation_id: Option<String>,
    pub correlation_id: Option<String>,
    /// Stored as a MessagePack binary rather than an array of integers.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The SHA-256 of the stream's previous event as stored (empty for a stream's first event),
    /// so that changing or removing any event breaks the chain after it: see [`crate::chain`].
    #[serde(default, with = "serde_bytes")]
    pub previous_hash: Vec<u8>,
}

impl RecordedEvent {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, rmp_serde::decode::Error> {
        rmp_serde::from_slice(&self.payload)
    }
}
