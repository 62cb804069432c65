//! Idempotency keys: a POST sent again with the same `Idempotency-Key` and the same body gets
//! the first response back instead of doing the work twice. Keys are scoped to an org and kept
//! for [`RETENTION_MS`]; a key whose request never finished (its gateway died) is given up on
//! after a while ([`ABANDONED_AFTER_MS`] by default), and a retry runs it again. What that
//! request created is recorded with the key in the same append ([`IdempotencyEvent::Effected`]),
//! so the run again finds it instead of creating it twice. Each key is decided on its own state
//! ([`KeyState`]), so the owner keeps one small stream per key and reads only the key a request
//! names.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
pub const ABANDONED_AFTER_MS: i64 = 60_000;
pub const MAX_KEY_CHARS: usize = 255;

pub fn parse_key(raw: &str) -> Result<String, String> {
    if (1..=MAX_KEY_CHARS).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(raw.to_owned())
    } else {
        Err(format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters."))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// The body as recorded: with every secret it carried withheld (see `withheld`).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The fields of the body whose secrets were shown once and withheld from the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
}

/// One use of a key: the request it was first sent with, what it created, and its response once
/// it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Use {
    fingerprint: Vec<u8>,
    started_at: Timestamp,
    effect: Option<u64>,
    response: Option<StoredResponse>,
}

/// What one key of one org stands for now: its latest use, if it has one that was not released.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    latest: Option<Use>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyEvent {
    Started {
        key: String,
        #[serde(with = "serde_bytes")]
        fingerprint: Vec<u8>,
        at: Timestamp,
    },
    Completed {
        key: String,
        response: StoredResponse,
        at: Timestamp,
    },
    /// The request failed in a way worth retrying (5xx, 429): the key is free again.
    Released {
        key: String,
        at: Timestamp,
    },
    /// The request created `resource` (a call): recorded in the append that creates it.
    Effected {
        key: String,
        resource: u64,
        at: Timestamp,
    },
}

impl IdempotencyEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Started { .. } => "idempotency_key_started",
            Self::Completed { .. } => "idempotency_key_completed",
            Self::Released { .. } => "idempotency_key_released",
            Self::Effected { .. } => "idempotency_key_effected",
        }
    }
}

/// What to do with a request that carries a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Run it: the key is new, expired, or abandoned.
    Proceed,
    /// Answer with the first response.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Conflict,
    /// The first request with the key is still running.
    InProgress,
}

impl KeyState {
    pub fn apply(&mut self, event: &IdempotencyEvent) {
        match event {
            IdempotencyEvent::Started { fingerprint, at, .. } => {
                // Run again after its first run was abandoned, the request still created what it
                // created.
                let effect = self.running().filter(|u| u.fingerprint == *fingerprint).and_then(|u| u.effect);
                self.latest = Some(Use { fingerprint: fingerprint.clone(), started_at: *at, effect, response: None });
            }
            IdempotencyEvent::Effected { resource, .. } => {
                if let Some(latest) = &mut self.latest {
                    latest.effect = Some(*resource);
                }
            }
            IdempotencyEvent::Completed { response, .. } => {
                if let Some(latest) = &mut self.latest {
                    latest.response = Some(response.clone());
                }
            }
            IdempotencyEvent::Released { .. } => self.latest = None,
        }
    }

    /// The key's use whose request is running: started, not ended.
    fn running(&self) -> Option<&Use> {
        self.latest.as_ref().filter(|u| u.response.is_none())
    }

    /// What the key's running request created already, if anything: a run again answers with
    /// it rather than creating another.
    pub fn effect(&self) -> Option<u64> {
        self.running().and_then(|u| u.effect)
    }

    pub fn is_running(&self) -> bool {
        self.running().is_some()
    }

    fn is_started(&self, fingerprint: &[u8]) -> bool {
        self.running().is_some_and(|u| u.fingerprint == fingerprint)
    }
}

/// How long a key holds: its retention (a day, [`RETENTION_MS`]), and how long its first run
/// may take before it is taken for dead ([`ABANDONED_AFTER_MS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub retention_ms: i64,
    pub abandoned_after_ms: i64,
}

impl Default for Window {
    fn default() -> Self {
        Self { retention_ms: RETENTION_MS, abandoned_after_ms: ABANDONED_AFTER_MS }
    }
}

impl Window {
    /// When a key's stream may leave the disk: its retention after the start of its latest use,
    /// which the event that starts a use fixes. Nothing a key recorded is needed after that (a
    /// request with the key is then new), so the stream is removed whole, not compacted.
    pub fn expiry_of(&self, event: &IdempotencyEvent) -> Option<Timestamp> {
        match event {
            IdempotencyEvent::Started { at, .. } => Some(Timestamp(at.0.saturating_add(self.retention_ms))),
            _ => None,
        }
    }
}

/// Decides what a request with `key` does, and what to record. A first run older than
/// `window.abandoned_after_ms` is taken for dead (its gateway died), and the request runs again.
/// The fingerprint identifies the request (its method, path and body); the engine records a
/// keyed MAC of it, never a bare hash.
pub fn begin(
    state: &KeyState,
    key: &str,
    fingerprint: &[u8],
    now: Timestamp,
    window: Window,
) -> (Begin, Vec<IdempotencyEvent>) {
    let start = || vec![IdempotencyEvent::Started { key: key.to_owned(), fingerprint: fingerprint.to_vec(), at: now }];
    let abandoned_after_ms = window.abandoned_after_ms;
    match &state.latest {
        Some(latest) if now.0 - latest.started_at.0 < window.retention_ms => {
            if latest.fingerprint != fingerprint {
                (Begin::Conflict, vec![])
            } else if let Some(response) = &latest.response {
                (Begin::Replay(response.clone()), vec![])
            } else if now.0 - latest.started_at.0 < abandoned_after_ms {
                (Begin::InProgress, vec![])
            } else {
                (Begin::Proceed, start())
            }
        }
        _ => (Begin::Proceed, start()),
    }
}

/// Records how a request with `key` ended: kept for replay, or released to be retried.
pub fn complete(
    state: &KeyState,
    key: &str,
    fingerprint: &[u8],
    response: StoredResponse,
    now: Timestamp,
) -> Vec<IdempotencyEvent> {
    if !state.is_started(fingerprint) {
        return vec![];
    }
    if response.status >= 500 || response.status == 429 {
        vec![IdempotencyEvent::Released { key: key.to_owned(), at: now }]
    } else {
        vec![IdempotencyEvent::Completed { key: key.to_owned(), response, at: now }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(events: &[IdempotencyEvent]) -> KeyState {
        let mut state = KeyState::default();
        for e in events {
            state.apply(e);
        }
        state
    }

    const W: Window = Window { retention_ms: RETENTION_MS, abandoned_after_ms: ABANDONED_AFTER_MS };

    fn window(abandoned_after_ms: i64) -> Window {
        Window { abandoned_after_ms, ..W }
    }

    fn ok() -> StoredResponse {
        StoredResponse { status: 201, body: b"{\"call_id\":7}".to_vec(), withheld: vec![] }
    }

    #[test]
    fn a_key_runs_once_and_then_replays() {
        let (first, started) = begin(&KeyState::default(), "k", b"f", Timestamp(0), W);
        assert_eq!(first, Begin::Proceed);
        let state = after(&started);
        assert_eq!(begin(&state, "k", b"f", Timestamp(10), W).0, Begin::InProgress);
        assert_eq!(begin(&state, "k", b"other", Timestamp(10), W).0, Begin::Conflict);
        let done = complete(&state, "k", b"f", ok(), Timestamp(20));
        let state = after(&[started, done].concat());
        assert_eq!(begin(&state, "k", b"f", Timestamp(30), W).0, Begin::Replay(ok()));
        assert_eq!(begin(&state, "k", b"other", Timestamp(30), W).0, Begin::Conflict);
        assert_eq!(
            begin(&state, "k", b"f", Timestamp(RETENTION_MS + 1), W).0,
            Begin::Proceed,
            "a day later the key is new"
        );
    }

    #[test]
    fn failures_worth_retrying_release_the_key_and_abandoned_keys_are_given_up() {
        let (_, started) = begin(&KeyState::default(), "k", b"f", Timestamp(0), W);
        let state = after(&started);
        let released =
            complete(&state, "k", b"f", StoredResponse { status: 503, body: vec![], withheld: vec![] }, Timestamp(5));
        assert!(matches!(released.as_slice(), [IdempotencyEvent::Released { .. }]));
        assert_eq!(begin(&after(&[started.clone(), released].concat()), "k", b"f", Timestamp(6), W).0, Begin::Proceed);
        assert_eq!(begin(&state, "k", b"f", Timestamp(ABANDONED_AFTER_MS), W).0, Begin::Proceed);
        assert_eq!(parse_key("ok-1").as_deref(), Ok("ok-1"));
        assert!(parse_key("").is_err() && parse_key("has space").is_err());
    }

    #[test]
    fn a_request_run_again_after_it_was_abandoned_finds_what_it_created() {
        let (_, started) = begin(&KeyState::default(), "k", b"f", Timestamp(0), window(500));
        let effected = vec![IdempotencyEvent::Effected { key: "k".into(), resource: 77, at: Timestamp(1) }];
        let state = after(&[started.clone(), effected.clone()].concat());
        assert_eq!(state.effect(), Some(77));
        // Its gateway died: after the abandonment the request runs again, and still knows call 77.
        let (again, restarted) = begin(&state, "k", b"f", Timestamp(600), window(500));
        assert_eq!(again, Begin::Proceed);
        let state = after(&[started.clone(), effected.clone(), restarted].concat());
        assert_eq!(state.effect(), Some(77));
        // A failure worth retrying releases the key, and what it created with it.
        let released =
            complete(&state, "k", b"f", StoredResponse { status: 502, body: vec![], withheld: vec![] }, Timestamp(700));
        let state = after(&[started, effected, released].concat());
        assert_eq!(state.effect(), None);
    }

    #[test]
    fn a_key_expires_its_retention_after_its_latest_start_and_is_new_then() {
        let short = Window { retention_ms: 1_000, abandoned_after_ms: 500 };
        let (_, started) = begin(&KeyState::default(), "k", b"f", Timestamp(10), short);
        assert_eq!(short.expiry_of(&started[0]), Some(Timestamp(1_010)));
        let done = complete(&after(&started), "k", b"f", ok(), Timestamp(20));
        assert_eq!(short.expiry_of(&done[0]), None, "only a start moves the expiry");
        let state = after(&[started, done].concat());
        assert_eq!(begin(&state, "k", b"f", Timestamp(1_009), short).0, Begin::Replay(ok()));
        assert_eq!(begin(&state, "k", b"other", Timestamp(1_010), short).0, Begin::Proceed);
    }
}
