//! Reads, served from a partition's projections without going through its actor.

use std::sync::Arc;

use domain::call::{CallState, Direction, Status};
use domain::ids::{AgentId, ApiKeyId, CallId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::Resource;
use domain::test_call::{BatchState, RunState, RunStatus, RunView, TargetType, batch_view, run_view};
use eventlog::Log;
use tokio::sync::Semaphore;
use wire::pb::{self, Failure, FailureKind, Reply, query::Kind, reply::Result as R};

use crate::partition::storage_failure;
use crate::rate_limit::RateWindows;
use crate::{calls_projection, org_projection, streams, test_calls_projection};

/// Bounds the queries a process answers at once. Queries run on the blocking pool, so a long
/// one never holds up authentication, which the serving loop answers itself (it owns the rate
/// windows, so the count stays exact); and at most `RUNNING` run at once, with at most
/// `WAITING` more queued, past which a query is refused as unavailable rather than queued
/// without bound.
#[derive(Clone)]
pub struct QueryLimits {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl QueryLimits {
    const RUNNING: usize = 16;
    const WAITING: usize = 1024;
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            running: Arc::new(Semaphore::new(Self::RUNNING)),
            admitted: Arc::new(Semaphore::new(Self::RUNNING + Self::WAITING)),
        }
    }
}

pub async fn serve(
    log: Log,
    mut queries: bus::Subscription,
    limits: QueryLimits,
    clock: actor::SharedClock,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut rates = RateWindows::default();
    loop {
        let request = tokio::select! {
            _ = shutdown.changed() => break,
            request = queries.next() => match request { Some(r) => r, None => break },
        };
        let query = match wire::decode::<pb::Query>(&request.payload) {
            Ok(pb::Query { kind: Some(kind), org_id }) => (OrgId(org_id), kind),
            Ok(_) | Err(_) => {
                respond(request, Err(Failure::new(FailureKind::Invalid, "bad_message", "undecodable query"))).await;
                continue;
            }
        };
        match query {
            (_, Kind::Authenticate(credentials)) => {
                let outcome = authenticate(&log, credentials, &mut rates, clock.now());
                respond(request, outcome).await;
            }
            (org, kind) => {
                let Ok(admitted) = limits.admitted.clone().try_acquire_owned() else {
                    let busy = "Too many queries are waiting; retry later.";
                    respond(request, Err(Failure::new(FailureKind::Unavailable, "service_unavailable", busy))).await;
                    continue;
                };
                let (log, running) = (log.clone(), limits.running.clone());
                tokio::spawn(async move {
                    let _admitted = admitted;
                    let Ok(_running) = running.acquire_owned().await else { return };
                    let outcome = tokio::task::spawn_blocking(move || answer(&log, org, kind))
                        .await
                        .unwrap_or_else(|e| Err(Failure::internal(format!("a query failed: {e}"))));
                    respond(request, outcome).await;
                });
            }
        }
    }
}

async fn respond(request: bus::Message, outcome: Result<R, Failure>) {
    let reply = match outcome {
        Ok(result) => Reply::with(result),
        Err(failure) => Reply::failure(failure),
    };
    if let Err(e) = request.respond(wire::encode(&reply)).await {
        tracing::warn!(error = %e, "could not answer a query");
    }
}

fn answer(log: &Log, org: OrgId, kind: Kind) -> Result<R, Failure> {
    // Every query is of an existing org; the profile is small, and says so.
    let profile = org_projection::read_profile(log, org)
        .map_err(storage_failure)?
        .ok_or_else(|| wire::not_found(Resource::Org))?;
    let stored = storage_failure;
    Ok(match kind {
        Kind::Authenticate(_) => unreachable!("answered by the serving loop"),
        Kind::GetOrg(_) => R::Org((&profile).into()),
        Kind::ListApiKeys(_) => R::ApiKeys(pb::ApiKeyList {
            keys: org_projection::list_keys(log, org)
                .map_err(stored)?
                .iter()
                .filter(|k| k.revoked_at.is_none())
                .map(Into::into)
                .collect(),
        }),
        Kind::GetAgent(r) => {
            let agent = org_projection::read_agent(log, org, AgentId(r.id)).map_err(stored)?;
            R::Agent((&found(agent, Resource::Agent)?).into())
        }
        Kind::ListAgents(_) => R::Agents(pb::AgentList {
            agents: org_projection::list_agents(log, org).map_err(stored)?.iter().map(Into::into).collect(),
        }),
        Kind::GetVoipConnection(r) => {
            let connection = org_projection::read_connection(log, org, VoipConnectionId(r.id)).map_err(stored)?;
            let numbers = org_projection::list_numbers(log, org).map_err(stored)?;
            R::VoipConnection(wire::connection_with_numbers(&found(connection, Resource::VoipConnection)?, &numbers))
        }
        Kind::ListVoipConnections(_) => R::VoipConnections(pb::VoipConnectionList {
            connections: {
                let numbers = org_projection::list_numbers(log, org).map_err(stored)?;
                let connections = org_projection::list_connections(log, org).map_err(stored)?;
                connections.iter().map(|c| wire::connection_with_numbers(c, &numbers)).collect()
            },
        }),
        Kind::GetPhoneNumber(r) => {
            let number = org_projection::read_number(log, org, PhoneNumberId(r.id)).map_err(stored)?;
            R::PhoneNumber((&found(number, Resource::PhoneNumber)?).into())
        }
        Kind::ListPhoneNumbers(_) => R::PhoneNumbers(pb::PhoneNumberList {
            numbers: org_projection::list_numbers(log, org).map_err(stored)?.iter().map(Into::into).collect(),
        }),
        Kind::GetCall(r) => R::Call((&own_call(log, org, CallId(r.id))?).into()),
        Kind::ListCalls(filter) => list_calls(log, org, filter)?,
        Kind::GetTranscript(r) => {
            let call = own_call(log, org, CallId(r.id))?;
            let turns = transcript(log, call.setup.id)?;
            let started_at_ms = call.answered_at.unwrap_or(call.created_at).as_millis();
            R::Transcript(pb::Transcript { call_id: r.id, turns, started_at_ms })
        }
        Kind::GetCallEvents(r) => {
            let call = own_call(log, org, CallId(r.id))?;
            R::Events(history(log, &streams::call(call.setup.id))?)
        }
        Kind::ListTestRuns(filter) => list_runs(log, org, filter)?,
        Kind::GetTestRun(r) => R::TestRun(run_reply(log, &own_run(log, org, r.id)?)?),
        Kind::ListTestBatches(page) => {
            let limit = page.limit.clamp(1, MAX_CALL_PAGE) as usize;
            let batches = test_calls_projection::ids_newest_first(log, &test_calls_projection::org_batches(org))
                .skip(page.offset as usize)
                .take(limit)
                .map(|id| {
                    let id = id.map_err(storage_failure)?;
                    batch_reply(log, &own_batch(log, org, id)?)
                })
                .collect::<Result<_, Failure>>()?;
            R::TestBatches(pb::TestBatchList { batches })
        }
        Kind::GetTestBatch(r) => R::TestBatch(batch_reply(log, &own_batch(log, org, r.id)?)?),
        Kind::GetTestBatchEvents(r) => {
            own_batch(log, org, r.id)?;
            R::Events(history(log, &streams::batch(r.id))?)
        }
    })
}

fn own_run(log: &Log, org: OrgId, id: u64) -> Result<RunState, Failure> {
    let run = test_calls_projection::read_run(log, id).map_err(storage_failure)?.filter(|r| r.org == org);
    match run {
        Some(run) if is_visible(log, &run)? => Ok(run),
        _ => Err(Failure::new(FailureKind::NotFound, "test_run_not_found", "Test-call run not found.")),
    }
}

/// Whether the API shows a run. A run requested directly and refused its funds was answered
/// 402, so it never was a run; a batch's run refused its funds is a failed run of the batch.
fn is_visible(log: &Log, run: &RunState) -> Result<bool, Failure> {
    let Some(call_id) = run.call_id.filter(|_| run.batch_id.is_none()) else { return Ok(true) };
    let call = calls_projection::read_call(log, call_id).map_err(storage_failure)?;
    Ok(call.is_none_or(|c| c.phase != domain::call::Phase::Rejected))
}

fn own_batch(log: &Log, org: OrgId, id: u64) -> Result<BatchState, Failure> {
    test_calls_projection::read_batch(log, id)
        .map_err(storage_failure)?
        .filter(|b| b.org == org)
        .ok_or_else(|| Failure::new(FailureKind::NotFound, "test_batch_not_found", "Test-call batch not found."))
}

fn view_of(log: &Log, run: &RunState) -> Result<RunView, Failure> {
    let call = match run.call_id {
        Some(id) => calls_projection::read_call(log, id).map_err(storage_failure)?,
        None => None,
    };
    Ok(run_view(run, call.as_ref()))
}

/// A run as the API shows it, joined with its call and its call's transcript.
pub(crate) fn run_reply(log: &Log, run: &RunState) -> Result<pb::TestRun, Failure> {
    let view = view_of(log, run)?;
    with_transcript(log, run, wire::test_run(run, &view))
}

fn with_transcript(log: &Log, run: &RunState, mut reply: pb::TestRun) -> Result<pb::TestRun, Failure> {
    if let Some(call) = run.call_id {
        reply.transcript = transcript(log, call)?;
    }
    Ok(reply)
}

fn transcript(log: &Log, call: CallId) -> Result<Vec<pb::Turn>, Failure> {
    Ok(calls_projection::read_turns(log, call)
        .map_err(storage_failure)?
        .into_iter()
        .map(|turn| pb::Turn {
            seq: turn.seq,
            speaker: turn.speaker.as_str().into(),
            text: turn.text,
            at_ms: turn.at.as_millis(),
        })
        .collect())
}

/// A batch as the API shows it, with its runs' outcomes counted.
pub(crate) fn batch_reply(log: &Log, batch: &BatchState) -> Result<pb::TestBatch, Failure> {
    let mut views = Vec::with_capacity(batch.run_ids.len());
    for id in &batch.run_ids {
        if let Some(run) = test_calls_projection::read_run(log, *id).map_err(storage_failure)? {
            views.push(view_of(log, &run)?);
        }
    }
    Ok(wire::test_batch(batch, &batch_view(batch, &views)))
}

fn list_runs(log: &Log, org: OrgId, filter: pb::RunFilter) -> Result<R, Failure> {
    let target_type =
        filter.target_type.as_deref().map(TargetType::parse).transpose().map_err(|e| invalid("target_type", e))?;
    let status = filter.status.as_deref().map(RunStatus::parse).transpose().map_err(|e| invalid("status", e))?;
    let limit = filter.limit.clamp(1, MAX_CALL_PAGE) as usize;
    let mut skipped = 0;
    let mut runs = Vec::new();
    for id in test_calls_projection::ids_newest_first(log, &test_calls_projection::org_runs(org)) {
        let Some(run) = test_calls_projection::read_run(log, id.map_err(storage_failure)?).map_err(storage_failure)?
        else {
            continue;
        };
        if !is_visible(log, &run)? {
            continue;
        }
        let view = view_of(log, &run)?;
        let matches = target_type.is_none_or(|t| run.request.target_type == t)
            && status.is_none_or(|s| view.status == s)
            && filter.agent_id.is_none_or(|a| run.agent_id == AgentId(a));
        if !matches {
            continue;
        }
        if skipped < filter.offset {
            skipped += 1;
            continue;
        }
        runs.push(with_transcript(log, &run, wire::test_run(&run, &view))?);
        if runs.len() == limit {
            break;
        }
    }
    Ok(R::TestRuns(pb::TestRunList { runs }))
}

/// A stream's events as the API shows them, payloads as stored.
fn history(log: &Log, stream: &str) -> Result<pb::StreamEvents, Failure> {
    let events = log
        .read_stream(stream, 1)
        .map_err(storage_failure)?
        .into_iter()
        .map(|e| pb::StreamEvent {
            r#type: e.event_type,
            version: e.version,
            recorded_at_ms: e.recorded_at_ms,
            payload: e.payload,
            correlation_id: e.correlation_id,
        })
        .collect();
    Ok(pb::StreamEvents { events })
}

/// A call of the org; another org's call is not found, exactly as a missing one.
fn own_call(log: &Log, org: OrgId, id: CallId) -> Result<CallState, Failure> {
    calls_projection::read_call(log, id)
        .map_err(storage_failure)?
        .filter(|c| c.setup.org == org && c.is_placed())
        .ok_or_else(wire::call_not_found)
}

/// The most calls one page may hold.
pub const MAX_CALL_PAGE: u32 = 200;

/// What a list's index does not narrow: each call of the list is read and checked.
struct Narrowing {
    from: Option<domain::E164>,
    to: Option<domain::E164>,
    either: Option<domain::E164>,
    start: Option<domain::Timestamp>,
    end: Option<domain::Timestamp>,
    exclude_test_calls: bool,
    test_calls_only: bool,
}

impl Narrowing {
    fn is_none(&self) -> bool {
        self.from.is_none()
            && self.to.is_none()
            && self.either.is_none()
            && self.start.is_none()
            && self.end.is_none()
            && !self.exclude_test_calls
            && !self.test_calls_only
    }

    fn admits(&self, call: &CallState) -> bool {
        let (from, to) = (&call.setup.from, &call.setup.to);
        self.from.as_ref().is_none_or(|n| n == from)
            && self.to.as_ref().is_none_or(|n| n == to)
            && self.either.as_ref().is_none_or(|n| n == from || n == to)
            && self.start.is_none_or(|t| call.created_at >= t)
            && self.end.is_none_or(|t| call.created_at <= t)
            && !(self.exclude_test_calls && call.is_test_call())
            && (!self.test_calls_only || call.is_test_call())
    }
}

fn number(field: &str, raw: Option<String>) -> Result<Option<domain::E164>, Failure> {
    raw.map(|n| domain::E164::parse(&n).map_err(|e| invalid(field, e))).transpose()
}

/// A page of an org's calls, newest first. The status, direction and agent pick one of the
/// projection's lists, whose count is the total and whose keys are skipped to the page; any
/// other filter (numbers, start times, test calls) is checked call by call along that list,
/// which then costs the list rather than the page.
fn list_calls(log: &Log, org: OrgId, filter: pb::CallFilter) -> Result<R, Failure> {
    let status = filter.status.as_deref().map(Status::parse).transpose().map_err(|e| invalid("status", e))?;
    let (direction, test_calls_only) = match filter.direction.as_deref() {
        None => (None, false),
        Some("outbound") => (Some(Direction::Outbound), false),
        Some("inbound") => (Some(Direction::Inbound), false),
        Some("test") => (None, true),
        // switchboard takes no web calls.
        Some("web") => return Ok(R::Calls(pb::CallPage { calls: vec![], total: 0 })),
        Some(other) => return Err(invalid("direction", format!("\"{other}\" is not a valid choice."))),
    };
    let narrowing = Narrowing {
        from: number("from_number", filter.from_number)?,
        to: number("to_number", filter.to_number)?,
        either: number("phone_number", filter.phone_number)?,
        start: filter.start_ms.map(domain::Timestamp),
        end: filter.end_ms.map(domain::Timestamp),
        exclude_test_calls: filter.exclude_test_calls,
        test_calls_only,
    };
    let limit = filter.limit.clamp(1, MAX_CALL_PAGE) as usize;
    let list = calls_projection::CallFilter { status, direction, agent_id: filter.agent_id.map(AgentId) };
    let read = |id: CallId| calls_projection::read_call(log, id).map_err(storage_failure);
    let mut calls = Vec::with_capacity(limit);
    if narrowing.is_none() && filter.before_id.is_none() {
        let total = calls_projection::count(log, org, &list).map_err(storage_failure)?;
        for id in calls_projection::page(log, org, &list, filter.offset as usize, limit).map_err(storage_failure)? {
            // Lists and calls are written in one batch: a listed call is always there.
            if let Some(call) = read(id)? {
                calls.push((&call).into());
            }
        }
        return Ok(R::Calls(pb::CallPage { calls, total }));
    }
    let mut total = 0u64;
    for id in calls_projection::ids_newest_first(log, org, &list, filter.before_id.map(CallId)) {
        let Some(call) = read(id.map_err(storage_failure)?)? else { continue };
        if !narrowing.admits(&call) {
            continue;
        }
        if total >= u64::from(filter.offset) && calls.len() < limit {
            calls.push((&call).into());
        }
        total += 1;
        // A cursor's pages (an export's) need no total: the first page, without one, gave it.
        if filter.before_id.is_some() && calls.len() == limit {
            break;
        }
    }
    Ok(R::Calls(pb::CallPage { calls, total }))
}

fn invalid(field: &str, message: String) -> Failure {
    Failure::invalid(domain::FieldErrors::single(field, message))
}

fn found<T>(value: Option<T>, resource: Resource) -> Result<T, Failure> {
    value.ok_or_else(|| wire::not_found(resource))
}

/// Checks an API key: its id finds the org, and the hash of its secret must match.
fn authenticate(
    log: &Log,
    credentials: pb::ApiKeyCredentials,
    rates: &mut RateWindows,
    now: domain::Timestamp,
) -> Result<R, Failure> {
    let invalid = || Failure::new(FailureKind::Unauthenticated, "authentication_failed", "Invalid API key.");
    let key_id = ApiKeyId(credentials.key_id);
    let org_projection::KeyRecord { org, key } =
        org_projection::read_key(log, key_id).map_err(storage_failure)?.ok_or_else(invalid)?;
    if !constant_time_eq(&key.secret_hash, &credentials.secret_hash) {
        return Err(invalid());
    }
    if key.revoked_at.is_some() {
        return Err(Failure::new(
            FailureKind::Unauthenticated,
            "authentication_failed",
            "This API key has been revoked.",
        ));
    }
    let profile = org_projection::read_profile(log, org).map_err(storage_failure)?;
    let limit = profile.map_or(domain::org::DEFAULT_RATE_LIMIT_PER_SECOND, |p| p.rate_limit());
    let rate_limit = rates.count(key_id, limit, now.as_millis());
    Ok(R::Authenticated(pb::Authenticated { org_id: org.0, key_id: key_id.0, rate_limit: Some(rate_limit) }))
}

/// Compares without stopping at the first difference, so timing reveals nothing of the hash.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
