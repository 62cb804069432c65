//! Balances and transactions, folded from ledger streams.
//!
//! - `balance/<org>`: the account sums, the rate and how many transactions there are.
//! - `tx/<org>/<transaction id>`: one posted transaction. Ids grow with time within a
//!   partition, so a reverse scan lists them newest first.

use domain::ids::OrgId;
use domain::ledger::{Balances, LedgerEvent, Transaction};
use eventlog::{Projection, ProjectionWriter, RecordedEvent};
use serde::{Deserialize, Serialize};

pub const NAME: &str = "ledger";
pub const STREAM_PREFIX: &str = "ledger/";

pub fn stream(org: OrgId) -> String {
    format!("{STREAM_PREFIX}{org}")
}

fn org_of(stream: &str) -> Option<OrgId> {
    stream.strip_prefix(STREAM_PREFIX)?.parse().ok().map(OrgId)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub balances: Balances,
    pub rate_cents_per_minute: Option<u32>,
    pub transaction_count: u64,
}

pub fn balance_key(org: OrgId) -> Vec<u8> {
    [b"balance/".as_slice(), &org.0.to_be_bytes()].concat()
}

pub fn transactions_prefix(org: OrgId) -> Vec<u8> {
    [b"tx/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

pub struct LedgerProjection;

impl Projection for LedgerProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(org) = org_of(&event.stream) else {
            return Ok(());
        };
        let ledger_event: LedgerEvent = event.decode().map_err(|e| e.to_string())?;
        let key = balance_key(org);
        let mut view: BalanceView = match writer.get(&key)? {
            Some(bytes) => rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?,
            None => BalanceView::default(),
        };
        view.balances.apply(ledger_event.entries());
        if let LedgerEvent::RateSet { cents_per_minute, .. } = ledger_event {
            view.rate_cents_per_minute = Some(cents_per_minute);
        }
        if let Some(transaction) = ledger_event.transaction() {
            view.transaction_count += 1;
            let tx_key = [transactions_prefix(org), transaction.id.to_be_bytes().to_vec()].concat();
            writer.put(&tx_key, rmp_serde::to_vec_named(transaction).map_err(|e| e.to_string())?);
        }
        writer.put(&key, rmp_serde::to_vec_named(&view).map_err(|e| e.to_string())?);
        Ok(())
    }
}

pub fn decode_transaction(bytes: &[u8]) -> Result<Transaction, eventlog::Error> {
    Ok(rmp_serde::from_slice(bytes)?)
}
