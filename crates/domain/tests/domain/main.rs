//! Business rules as given / when / then: given these events, when this command, then these
//! events or this error. No I/O.

mod common;

mod agent;
mod call;
mod directory;
mod funding;
mod ledger;
mod names;
mod org;
mod outbound;
mod test_call;
mod voip;
