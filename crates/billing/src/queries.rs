//! Balance and transaction reads, served from projections beside the actor.

use actor::SharedClock;
use domain::Timestamp;
use domain::funding::AccountView;
use domain::ids::OrgId;
use domain::ledger::{Balance, LedgerQuery, LedgerReply, Transaction};
use eventlog::Log;
use wire::BillingError;

use crate::projection::{self, LedgerView};

/// The most transactions one page may hold.
pub const MAX_PAGE: u32 = 200;

pub async fn serve(
    log: Log,
    mut queries: bus::Subscription,
    clock: SharedClock,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.changed() => break,
            request = queries.next() => match request { Some(r) => r, None => break },
        };
        let outcome =
            wire::billing_query(&request.payload).and_then(|(org, query)| answer(&log, org, query, clock.now()));
        if let Err(e) = request.respond(wire::billing_reply(outcome)).await {
            tracing::warn!(error = %e, "could not answer a billing query");
        }
    }
}

fn unavailable(error: eventlog::Error) -> BillingError {
    tracing::error!(%error, "billing store failure");
    BillingError::Unavailable
}

/// Answers a read of the org's ledger from the projections, at `now` (this month's spend and
/// auto-reload's standing depend on it).
pub fn answer(log: &Log, org: OrgId, query: LedgerQuery, now: Timestamp) -> Result<LedgerReply, BillingError> {
    let view: LedgerView = log
        .projection_get(projection::NAME, &projection::ledger_key(org))
        .map_err(unavailable)?
        .map(|bytes| projection::decode(&bytes).map_err(unavailable))
        .transpose()?
        .unwrap_or_default();
    match query {
        LedgerQuery::Balance => Ok(LedgerReply::Balance(Balance::of(&view.balances, view.rate()))),
        LedgerQuery::Account => {
            Ok(LedgerReply::Account(Box::new(AccountView::of(&view.balances, view.rate(), &view.funding, now))))
        }
        LedgerQuery::Transactions { limit, offset } => {
            let limit = limit.clamp(1, MAX_PAGE) as usize;
            let transactions = log
                .projection_scan(projection::NAME, &projection::transactions_prefix(org))
                .rev()
                .skip(offset as usize)
                .take(limit)
                .map(|entry| {
                    let (_, bytes) = entry.map_err(unavailable)?;
                    projection::decode::<Transaction>(&bytes).map_err(unavailable)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(LedgerReply::Transactions { transactions, total: view.transaction_count })
        }
    }
}
