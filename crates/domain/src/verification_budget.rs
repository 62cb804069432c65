//! How many verifications of VoIP connections may run. Each one sends a probe to a host the
//! org chose and holds a socket for seconds; unbounded, verifications would let anyone with an
//! API key make the engine send traffic where they like, as fast as they like. So: one probe
//! in flight per connection (a second verification meanwhile shares the first one's outcome),
//! at most [`VerificationLimits::per_org_per_minute`] probes per org in any minute, and at most
//! [`VerificationLimits::max_probes_in_flight`] probes at once in a process (which the owner
//! counts, since it spans partitions, and passes in).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::Timestamp;
use crate::ids::{OrgId, PhoneNumberId, VoipConnectionId};

/// What a probe checks: a configuration under test (each test probes on its own: its outcome
/// is its own evidence), a connection, or the number a verification proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeSubject {
    Test(u64),
    Connection(VoipConnectionId),
    Number(PhoneNumberId),
}

impl From<VoipConnectionId> for ProbeSubject {
    fn from(id: VoipConnectionId) -> Self {
        Self::Connection(id)
    }
}

impl From<PhoneNumberId> for ProbeSubject {
    fn from(id: PhoneNumberId) -> Self {
        Self::Number(id)
    }
}

/// The window the per-org count covers.
pub const WINDOW_MS: i64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationLimits {
    /// Probes one org may start in any minute.
    pub per_org_per_minute: u32,
    /// Probes one process may have in flight, over every partition it owns.
    pub max_probes_in_flight: usize,
}

impl Default for VerificationLimits {
    fn default() -> Self {
        Self { per_org_per_minute: 10, max_probes_in_flight: 64 }
    }
}

/// What becomes of a request to verify a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Probe the connection; report the end with [`VerificationBudget::finished`].
    Probe,
    /// A probe of this connection is in flight: its outcome answers this request too.
    Join,
    /// The org started its minute's probes: retry after this many seconds.
    OrgRateLimited { retry_after_seconds: u32 },
    /// The process has as many probes in flight as it allows: retry shortly.
    Busy,
}

/// The probes of one partition's orgs: those in flight, and when the last minute's began.
#[derive(Clone, Debug, Default)]
pub struct VerificationBudget {
    /// When each org's probes of the last minute began, oldest first; an org with none has no entry.
    started: HashMap<OrgId, VecDeque<Timestamp>>,
    in_flight: HashSet<(OrgId, ProbeSubject)>,
}

impl VerificationBudget {
    /// Decides a request to probe `subject` at `now`; `slot_free` says whether the
    /// process has room for one more probe. Counts the probe when it admits one.
    pub fn admit(
        &mut self,
        limits: &VerificationLimits,
        org: OrgId,
        subject: impl Into<ProbeSubject>,
        now: Timestamp,
        slot_free: bool,
    ) -> Admission {
        let connection = subject.into();
        if self.in_flight.contains(&(org, connection)) {
            return Admission::Join;
        }
        // Starts older than the window no longer count; orgs left with none are forgotten, so
        // the budget holds only the orgs of the last minute.
        self.started.retain(|_, starts| {
            while starts.front().is_some_and(|t| t.0 + WINDOW_MS <= now.0) {
                starts.pop_front();
            }
            !starts.is_empty()
        });
        let starts = self.started.get(&org);
        if starts.is_some_and(|s| s.len() >= limits.per_org_per_minute as usize) {
            let oldest = starts.and_then(VecDeque::front).expect("a full window has a first start");
            let wait_ms = (oldest.0 + WINDOW_MS - now.0).max(1);
            return Admission::OrgRateLimited { retry_after_seconds: (wait_ms as u64).div_ceil(1000) as u32 };
        }
        if !slot_free {
            return Admission::Busy;
        }
        self.started.entry(org).or_default().push_back(now);
        self.in_flight.insert((org, connection));
        Admission::Probe
    }

    /// The probe of `subject` ended; the next verification probes again.
    pub fn finished(&mut self, org: OrgId, subject: impl Into<ProbeSubject>) {
        self.in_flight.remove(&(org, subject.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: VerificationLimits = VerificationLimits { per_org_per_minute: 3, max_probes_in_flight: 8 };
    const ORG: OrgId = OrgId(7);

    fn at(ms: i64) -> Timestamp {
        Timestamp(1_000_000 + ms)
    }

    #[test]
    fn a_second_verification_of_a_connection_in_flight_joins_the_first() {
        let mut budget = VerificationBudget::default();
        let c = VoipConnectionId(1);
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(0), true), Admission::Probe);
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(10), true), Admission::Join);
        // Joining costs the org nothing, and needs no slot.
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(20), false), Admission::Join);
        budget.finished(ORG, c);
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(30), true), Admission::Probe);
    }

    #[test]
    fn an_org_starts_at_most_its_limit_of_probes_in_any_minute() {
        let mut budget = VerificationBudget::default();
        for (i, ms) in [0, 1_000, 2_500].into_iter().enumerate() {
            let c = VoipConnectionId(i as u64);
            assert_eq!(budget.admit(&LIMITS, ORG, c, at(ms), true), Admission::Probe);
            budget.finished(ORG, c);
        }
        let c = VoipConnectionId(9);
        // The first start leaves the window at 60 s: 59.5 s from now, so retry after 60 s.
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(500), true), Admission::OrgRateLimited { retry_after_seconds: 60 });
        assert_eq!(
            budget.admit(&LIMITS, ORG, c, at(59_000), true),
            Admission::OrgRateLimited { retry_after_seconds: 1 }
        );
        // Another org has a budget of its own.
        assert_eq!(budget.admit(&LIMITS, OrgId(8), c, at(59_000), true), Admission::Probe);
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(60_000), true), Admission::Probe);
    }

    #[test]
    fn without_a_free_slot_in_the_process_nothing_is_probed_or_counted() {
        let mut budget = VerificationBudget::default();
        let c = VoipConnectionId(1);
        for ms in 0..5 {
            assert_eq!(budget.admit(&LIMITS, ORG, c, at(ms), false), Admission::Busy);
        }
        assert_eq!(budget.admit(&LIMITS, ORG, c, at(10), true), Admission::Probe, "busy refusals cost nothing");
    }

    #[test]
    fn orgs_leave_the_budget_once_their_minute_is_over() {
        let mut budget = VerificationBudget::default();
        for org in 0..100 {
            budget.admit(&LIMITS, OrgId(org), VoipConnectionId(1), at(0), true);
            budget.finished(OrgId(org), VoipConnectionId(1));
        }
        budget.admit(&LIMITS, ORG, VoipConnectionId(2), at(WINDOW_MS), true);
        assert_eq!(budget.started.len(), 1);
    }
}
