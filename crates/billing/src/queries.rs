//! Balance and transaction reads, served from projections beside the actor.

use domain::ids::OrgId;
use domain::ledger::Transaction;
use eventlog::Log;
use wire::pb::{self, BillingReply, Failure, FailureKind, billing_query::Kind, billing_reply::Result as R};

use crate::projection::{self, LedgerView};

/// The most transactions one page may hold.
pub const MAX_PAGE: u32 = 200;

pub async fn serve(log: Log, mut queries: bus::Subscription, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let request = tokio::select! {
            _ = shutdown.changed() => break,
            request = queries.next() => match request { Some(r) => r, None => break },
        };
        let reply = match answer(&log, &request.payload) {
            Ok(result) => BillingReply::with(result),
            Err(failure) => BillingReply::failure(failure),
        };
        if let Err(e) = request.respond(wire::encode(&reply)).await {
            tracing::warn!(error = %e, "could not answer a billing query");
        }
    }
}

fn unavailable(error: eventlog::Error) -> Failure {
    tracing::error!(%error, "billing store failure");
    Failure::new(FailureKind::Unavailable, "storage_unavailable", "The ledger is unavailable; retry later.")
}

fn answer(log: &Log, payload: &[u8]) -> Result<R, Failure> {
    let query: pb::BillingQuery =
        wire::decode(payload).map_err(|_| Failure::new(FailureKind::Invalid, "bad_message", "undecodable query"))?;
    let org = OrgId(query.org_id);
    let view: LedgerView = log
        .projection_get(projection::NAME, &projection::ledger_key(org))
        .map_err(unavailable)?
        .map(|bytes| projection::decode(&bytes).map_err(unavailable))
        .transpose()?
        .unwrap_or_default();
    match query.kind {
        Some(Kind::Balance(_)) => Ok(R::Balance(wire::balance(&view.balances, view.rate()))),
        Some(Kind::Transactions(page)) => {
            let limit = page.limit.clamp(1, MAX_PAGE) as usize;
            let transactions = log
                .projection_scan(projection::NAME, &projection::transactions_prefix(org))
                .rev()
                .skip(page.offset as usize)
                .take(limit)
                .map(|entry| {
                    let (_, bytes) = entry.map_err(unavailable)?;
                    let t = projection::decode::<Transaction>(&bytes).map_err(unavailable)?;
                    Ok((&t).into())
                })
                .collect::<Result<Vec<pb::Transaction>, Failure>>()?;
            Ok(R::Transactions(pb::TransactionPage { transactions, total: view.transaction_count }))
        }
        None => Err(Failure::new(FailureKind::Invalid, "bad_message", "empty query")),
    }
}
