use serde::{Deserialize, Serialize};

use crate::Timestamp;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An organization. Org ids are allocated by the directory, one after another.
    OrgId
);
id_type!(ApiKeyId);
id_type!(AgentId);
id_type!(VoipConnectionId);
id_type!(PhoneNumberId);
id_type!(CallId);

/// Ids stay below 2^53 so that JavaScript clients read them exactly.
pub const MAX_SAFE_ID: u64 = (1 << 53) - 1;

/// How organizations map to partitions. Fixed for the life of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioning {
    count: u32,
}

impl Partitioning {
    pub const DEFAULT_COUNT: u32 = 64;

    pub fn new(count: u32) -> Self {
        assert!((1..=4096).contains(&count), "partition count {count} out of range");
        Self { count }
    }

    pub fn count(self) -> u32 {
        self.count
    }

    pub fn of_org(self, org: OrgId) -> u32 {
        (org.0 % u64::from(self.count)) as u32
    }

    /// The partition a resource id was allocated in; ids are allocated so that it is the
    /// partition of the resource's org.
    pub fn of_id(self, id: u64) -> u32 {
        (id % u64::from(self.count)) as u32
    }

    /// The partition that owns the directory of orgs and phone numbers.
    pub fn directory(self) -> u32 {
        0
    }
}

/// Allocates resource ids in one partition: `seq * P + partition`, so an id names its partition.
/// Sequence numbers are reserved in blocks; the owner records a block's end durably before it
/// hands out ids from it, and after a restart continues from the end of the last block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdSequence {
    partitioning: Partitioning,
    partition: u32,
    next_seq: u64,
    reserved_until_seq: u64,
    /// Set when `next` ran past the reserved block and extended it.
    extended: bool,
}

impl IdSequence {
    pub const BLOCK: u64 = 1024;

    /// Resumes after the last reserved block (`reserved_until_seq`, exclusive).
    pub fn resume(partitioning: Partitioning, partition: u32, reserved_until_seq: u64) -> Self {
        // Sequence 0 is never used, so that no id is 0.
        let start = reserved_until_seq.max(1);
        Self { partitioning, partition, next_seq: start, reserved_until_seq: start, extended: false }
    }

    pub fn next_id(&mut self) -> u64 {
        if self.next_seq >= self.reserved_until_seq {
            self.reserved_until_seq = self.next_seq + Self::BLOCK;
            self.extended = true;
        }
        let id = self.next_seq * u64::from(self.partitioning.count()) + u64::from(self.partition);
        assert!(id <= MAX_SAFE_ID, "id space of partition {} exhausted", self.partition);
        self.next_seq += 1;
        id
    }

    /// The end of a block reserved since the last call, which the owner must record.
    pub fn take_new_reservation(&mut self) -> Option<u64> {
        std::mem::take(&mut self.extended).then_some(self.reserved_until_seq)
    }
}

/// What a decision may know of the world: the time, and fresh ids.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub now: Timestamp,
    pub ids: &'a mut IdSequence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_partition_and_resume_after_the_reserved_block() {
        let p = Partitioning::new(64);
        let mut seq = IdSequence::resume(p, 5, 0);
        let a = seq.next_id();
        let b = seq.next_id();
        assert_eq!((a % 64, b % 64), (5, 5));
        assert!(b > a);
        let reserved = seq.take_new_reservation().expect("the first id reserves a block");
        assert_eq!(seq.take_new_reservation(), None);

        let mut resumed = IdSequence::resume(p, 5, reserved);
        let c = resumed.next_id();
        assert!(c > b && c % 64 == 5);
    }
}

/// Events of a partition's own bookkeeping stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionEvent {
    /// Ids with sequence numbers below `until_seq` may be handed out.
    IdBlockReserved { until_seq: u64 },
}

impl PartitionEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::IdBlockReserved { .. } => "id_block_reserved",
        }
    }
}
