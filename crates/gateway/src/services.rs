//! The gateway's side of the bus: requests to the partition that owns an org.

use std::time::Duration;

use bus::{Headers, SharedBus};
use bytes::Bytes;
use domain::Partitioning;
use domain::ids::OrgId;
use wire::pb::{self, billing_command, billing_query, billing_reply, command, query, reply};

use crate::error::ApiError;

#[derive(Clone)]
pub struct Services {
    bus: SharedBus,
    partitioning: Partitioning,
    /// How long a request waits for its partition's owner before the client gets a 503.
    timeout: Duration,
}

impl Services {
    pub fn new(bus: SharedBus, partitioning: Partitioning, timeout: Duration) -> Self {
        Self { bus, partitioning, timeout }
    }

    /// A write to the org's partition.
    pub async fn command(&self, org: OrgId, kind: command::Kind) -> Result<reply::Result, ApiError> {
        let subject = bus::subjects::orchestrator_commands(self.partitioning.of_org(org));
        self.orchestrator(&subject, wire::encode(&pb::Command { org_id: org.0, kind: Some(kind) })).await
    }

    /// A write to the directory, which holds what is unique across orgs.
    pub async fn directory(&self, org: OrgId, kind: command::Kind) -> Result<reply::Result, ApiError> {
        let subject = bus::subjects::orchestrator_commands(self.partitioning.directory());
        self.orchestrator(&subject, wire::encode(&pb::Command { org_id: org.0, kind: Some(kind) })).await
    }

    /// A read from the org's partition.
    pub async fn query(&self, org: OrgId, kind: query::Kind) -> Result<reply::Result, ApiError> {
        let subject = bus::subjects::orchestrator_queries(self.partitioning.of_org(org));
        self.orchestrator(&subject, wire::encode(&pb::Query { org_id: org.0, kind: Some(kind) })).await
    }

    /// The key's org and its rate-limit state, counted at the key's partition.
    pub async fn authenticate(
        &self,
        key_id: u64,
        secret_hash: Vec<u8>,
    ) -> Result<(OrgId, Option<pb::RateLimit>), ApiError> {
        let subject = bus::subjects::orchestrator_queries(self.partitioning.of_id(key_id));
        let credentials = pb::ApiKeyCredentials { key_id, secret_hash };
        let query = pb::Query { org_id: 0, kind: Some(query::Kind::Authenticate(credentials)) };
        match self.orchestrator(&subject, wire::encode(&query)).await? {
            reply::Result::Authenticated(a) => Ok((OrgId(a.org_id), a.rate_limit)),
            _ => Err(ApiError::unexpected_reply()),
        }
    }

    /// A write to the org's ledger.
    pub async fn billing(&self, org: OrgId, kind: billing_command::Kind) -> Result<billing_reply::Result, ApiError> {
        let subject = bus::subjects::billing_commands(self.partitioning.of_org(org));
        self.ledger(&subject, wire::encode(&pb::BillingCommand { org_id: org.0, kind: Some(kind) })).await
    }

    /// A read of the org's ledger.
    pub async fn billing_query(
        &self,
        org: OrgId,
        kind: billing_query::Kind,
    ) -> Result<billing_reply::Result, ApiError> {
        let subject = bus::subjects::billing_queries(self.partitioning.of_org(org));
        self.ledger(&subject, wire::encode(&pb::BillingQuery { org_id: org.0, kind: Some(kind) })).await
    }

    /// Sends an encoded `Command` or `Query` to an orchestrator partition.
    async fn orchestrator(&self, subject: &str, message: Bytes) -> Result<reply::Result, ApiError> {
        let reply: pb::Reply =
            wire::decode(&self.exchange(subject, message).await?).map_err(|_| ApiError::unexpected_reply())?;
        match reply.result {
            Some(reply::Result::Failure(f)) => Err(f.into()),
            Some(result) => Ok(result),
            None => Err(ApiError::unexpected_reply()),
        }
    }

    /// Sends an encoded `BillingCommand` or `BillingQuery` to a billing partition.
    async fn ledger(&self, subject: &str, message: Bytes) -> Result<billing_reply::Result, ApiError> {
        let reply: pb::BillingReply =
            wire::decode(&self.exchange(subject, message).await?).map_err(|_| ApiError::unexpected_reply())?;
        match reply.result {
            Some(billing_reply::Result::Failure(f)) => Err(f.into()),
            Some(result) => Ok(result),
            None => Err(ApiError::unexpected_reply()),
        }
    }

    /// A request over the bus, with the request id in its headers.
    async fn exchange(&self, subject: &str, message: Bytes) -> Result<Bytes, ApiError> {
        let mut headers = Headers::new();
        if let Some(id) = crate::context::request_id() {
            headers.insert(crate::context::REQUEST_ID.to_owned(), id);
        }
        Ok(self.bus.request(subject, &headers, message, self.timeout).await?)
    }
}
