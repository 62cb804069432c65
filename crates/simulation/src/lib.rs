//! The deterministic simulation, in the manner of TigerBeetle's VOPR and FoundationDB's
//! simulation testing: one orchestrator partition and its billing partition, over the real event
//! log in a temporary directory, driven from a seed by a random but reproducible schedule, with
//! the invariants checked after every step.
//!
//! Nothing runs on its own. The partitions decide; the simulation takes their effects and plays
//! the world around them: it is billing's network (requests and answers lost, delayed, repeated),
//! the carrier (dials taken, refused or never answered; reports late, twice, out of order or
//! never), the clock (timers fire when it moves), the clients (calls placed on tiny balances, with
//! idempotency keys and retries; test calls and batches, with cancels; top-ups; hang-ups), and
//! the crashes (the orchestrator dropped at a random step with everything in flight, and rebuilt
//! from its log). The same seed gives the same run, step for step.

mod checks;
mod world;

pub use world::{Options, Outcome, run};
