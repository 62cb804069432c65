//! The pure core of switchboard: ids, value types, and the state machines that decide what
//! happens. Nothing here does I/O; time and id allocation come in through [`Ctx`], so every
//! decision is deterministic and a replay of the log reproduces it exactly.

pub mod agent;
pub mod call;
pub mod directory;
pub mod fields;
pub mod funding;
pub mod idempotency;
pub mod ids;
pub mod ledger;
pub mod org;
pub mod phone;
pub mod secret;
pub mod test_call;
pub mod time;
pub mod verification_budget;
pub mod voip;

pub use fields::FieldErrors;
pub use ids::{Ctx, IdSequence, PartitionEvent, Partitioning};
pub use phone::E164;
pub use time::Timestamp;
