//! The protobuf messages between services (compiled from `proto/`), and their conversions to
//! and from domain types. This is the one place where wire types and domain types meet.

pub mod pb {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.rs"));
}

mod billing;
mod calls;
mod commands;
mod convert;
mod failure;
mod orchestrator;
mod test_calls;

pub use billing::*;
pub use calls::*;
pub use commands::*;
pub use convert::*;
pub use failure::*;
pub use orchestrator::*;
pub use test_calls::*;

use bytes_compat::Bytes;
use prost::Message;

/// Encodes a message for the bus.
pub fn encode<M: Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Decodes a message from the bus.
pub fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, prost::DecodeError> {
    M::decode(bytes)
}

mod bytes_compat {
    pub use prost::bytes::Bytes;
}
