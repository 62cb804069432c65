//! What the ledger streams fold into, for the owner and for reads:
//!
//! - `ledger/<org>`: the org's balances and rate, the stream version they are folded to, and
//!   how many transactions there are.
//! - `open/<org>/<reference>`: an open reservation. With the view above, the whole
//!   [`LedgerState`], from which the owner starts instead of replaying every ledger; kept apart
//!   so that an event writes one reservation, not all of them.
//! - `ref/<org>/<reference>`: what was [`Recorded`] under a reference, which the owner reads
//!   before deciding a command that names it; so memory holds no history.
//! - `tx/<org>/<transaction id>`: one posted transaction. Ids grow with time within a
//!   partition, so a reverse scan lists them newest first.

use std::collections::BTreeMap;

use actor::Folded;
use domain::funding::Funding;
use domain::ids::OrgId;
use domain::ledger::{Balances, LedgerEvent, LedgerState, Recorded, Reservation};
use eventlog::{Log, Projection, ProjectionWriter, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::streams;

pub const NAME: &str = "ledger";
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerView {
    pub balances: Balances,
    pub rate_cents_per_minute: Option<u32>,
    /// The version of the org's ledger stream this view is folded to.
    pub version: u64,
    pub transaction_count: u64,
    /// Auto-reload, charges in flight, this month's spend, the last credits.
    #[serde(default)]
    pub funding: Funding,
}

impl LedgerView {
    pub fn rate(&self) -> u32 {
        domain::ledger::rate_or_default(self.rate_cents_per_minute)
    }
}

const LEDGERS_PREFIX: &[u8] = b"ledger/";

pub fn ledger_key(org: OrgId) -> Vec<u8> {
    [LEDGERS_PREFIX, &org.0.to_be_bytes()].concat()
}

/// The org of a key under [`LEDGERS_PREFIX`].
fn org_of_ledger_key(key: &[u8]) -> Option<OrgId> {
    Some(OrgId(u64::from_be_bytes(key.strip_prefix(LEDGERS_PREFIX)?.try_into().ok()?)))
}

fn record_key(org: OrgId, reference: &str) -> Vec<u8> {
    [b"ref/".as_slice(), &org.0.to_be_bytes(), b"/", reference.as_bytes()].concat()
}

fn open_prefix(org: OrgId) -> Vec<u8> {
    [b"open/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

fn open_key(org: OrgId, reference: &str) -> Vec<u8> {
    [open_prefix(org), reference.as_bytes().to_vec()].concat()
}

pub fn transactions_prefix(org: OrgId) -> Vec<u8> {
    [b"tx/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

pub struct LedgerProjection;

impl Projection for LedgerProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: the view holds the whole decision state and references have records. 3: and the
    /// funding (auto-reload, charges, month spend, last credits).
    fn version(&self) -> u32 {
        3
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(org) = streams::org_of(&event.stream) else {
            return Ok(());
        };
        let ledger_event: LedgerEvent = event.decode().map_err(|e| e.to_string())?;
        let key = ledger_key(org);
        let mut view: LedgerView = read(writer, &key)?.unwrap_or_default();
        view.balances.apply(ledger_event.entries());
        view.funding.apply(&ledger_event);
        view.version = event.version;
        match &ledger_event {
            LedgerEvent::FundsReserved { reservation, .. } => {
                writer.put(&open_key(org, &reservation.reference), encode(reservation)?);
            }
            LedgerEvent::ReservationSettled { reference, .. } | LedgerEvent::ReservationReleased { reference, .. } => {
                writer.remove(&open_key(org, reference));
            }
            LedgerEvent::RateSet { cents_per_minute, .. } => view.rate_cents_per_minute = Some(*cents_per_minute),
            LedgerEvent::TopUpPosted { .. }
            | LedgerEvent::AutoReloadSet { .. }
            | LedgerEvent::ChargeRequested { .. }
            | LedgerEvent::ChargeSucceeded { .. }
            | LedgerEvent::ChargeDeclined { .. } => {}
        }
        if let Some(transaction) = ledger_event.transaction() {
            view.transaction_count += 1;
            let tx_key = [transactions_prefix(org), transaction.id.to_be_bytes().to_vec()].concat();
            writer.put(&tx_key, encode(transaction)?);
        }
        if let Some(reference) = ledger_event.recorded_under() {
            let key = record_key(org, reference);
            let mut recorded: Recorded = read(writer, &key)?.unwrap_or_default();
            recorded.apply(&ledger_event);
            writer.put(&key, encode(&recorded)?);
        }
        writer.put(&key, encode(&view)?);
        Ok(())
    }
}

fn read<T: DeserializeOwned>(writer: &ProjectionWriter<'_>, key: &[u8]) -> Result<Option<T>, String> {
    writer.get(key)?.map(|bytes| decode(&bytes).map_err(|e| e.to_string())).transpose()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, eventlog::Error> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// Every ledger of the partition as its owner decides with it: the view and the open
/// reservations, at the stream version they are folded to.
pub fn read_ledgers(log: &Log) -> Result<BTreeMap<OrgId, Folded<LedgerState>>, eventlog::Error> {
    let mut ledgers = BTreeMap::new();
    for entry in log.projection_scan(NAME, LEDGERS_PREFIX) {
        let (key, bytes) = entry?;
        let Some(org) = org_of_ledger_key(&key) else { continue };
        let view: LedgerView = decode(&bytes)?;
        let open = log
            .projection_scan(NAME, &open_prefix(org))
            .map(|entry| {
                let reservation: Reservation = decode(&entry?.1)?;
                Ok((reservation.reference.clone(), reservation))
            })
            .collect::<Result<_, eventlog::Error>>()?;
        let state = LedgerState {
            balances: view.balances,
            rate_cents_per_minute: view.rate_cents_per_minute,
            open,
            funding: view.funding,
        };
        ledgers.insert(org, Folded { state, version: view.version });
    }
    Ok(ledgers)
}

/// What the ledger recorded under `reference` (the default record if nothing yet).
pub fn read_recorded(log: &Log, org: OrgId, reference: &str) -> Result<Recorded, eventlog::Error> {
    Ok(log.projection_get(NAME, &record_key(org, reference))?.map(|b| decode(&b)).transpose()?.unwrap_or_default())
}
