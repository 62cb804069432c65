//! Rate limits, counted where keys are authenticated: the query server of a key's partition
//! keeps a one-second window per key, so the count is one however many gateways there are.

use std::collections::HashMap;

use domain::ids::ApiKeyId;
use wire::pb;

/// Each key's request count in the current one-second window. Kept in memory only: a restart
/// forgets at most one second of counting.
#[derive(Default)]
pub(crate) struct RateWindows {
    windows: HashMap<ApiKeyId, (i64, u32)>,
}

impl RateWindows {
    /// Past this many keys, windows that ended are forgotten.
    const MAX_KEYS: usize = 100_000;

    /// Counts one request of `key` at `now_ms`, and says where the key stands against `limit`.
    pub(crate) fn count(&mut self, key: ApiKeyId, limit: u32, now_ms: i64) -> pb::RateLimit {
        let second = now_ms.div_euclid(1000);
        if self.windows.len() > Self::MAX_KEYS {
            self.windows.retain(|_, (s, _)| *s == second);
        }
        let window = self.windows.entry(key).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        pb::RateLimit {
            limit,
            remaining: limit.saturating_sub(window.1),
            reset_at_ms: (second + 1) * 1000,
            exceeded: window.1 > limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_counted_within_its_second_and_starts_again_in_the_next() {
        let mut windows = RateWindows::default();
        let key = ApiKeyId(7);
        let first = windows.count(key, 2, 10_000);
        assert_eq!((first.remaining, first.exceeded, first.reset_at_ms), (1, false, 11_000));
        assert!(!windows.count(key, 2, 10_500).exceeded);
        let third = windows.count(key, 2, 10_999);
        assert_eq!((third.remaining, third.exceeded), (0, true), "the third request of a second is past a limit of 2");
        let next_second = windows.count(key, 2, 11_000);
        assert_eq!((next_second.remaining, next_second.exceeded, next_second.reset_at_ms), (1, false, 12_000));
    }

    #[test]
    fn keys_are_counted_apart() {
        let mut windows = RateWindows::default();
        windows.count(ApiKeyId(1), 1, 0);
        assert!(windows.count(ApiKeyId(1), 1, 1).exceeded);
        assert!(!windows.count(ApiKeyId(2), 1, 2).exceeded, "another key's window is its own");
    }
}
