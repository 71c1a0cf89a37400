/// A token bucket in milli-tokens, refilled from `now_ms` (no clock is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate_per_s: u32,
    burst: u32,
    milli_tokens: u64,
    updated_ms: u64,
}

impl TokenBucket {
    pub fn new_full(rate_per_s: u32, burst: u32, now_ms: u64) -> TokenBucket {
        assert!(rate_per_s > 0 && burst > 0);
        TokenBucket {
            rate_per_s,
            burst,
            milli_tokens: u64::from(burst) * 1000,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.updated_ms);
        let cap = u64::from(self.burst) * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed_ms * u64::from(self.rate_per_s)).min(cap);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now_ms: u64) -> u32 {
        self.refill(now_ms);
        u32::try_from(self.milli_tokens / 1000).unwrap_or(u32::MAX)
    }

    /// Returns `count` tokens taken for something that turned out not to cost them (never
    /// past the burst).
    pub fn give_back(&mut self, count: u32, now_ms: u64) {
        self.refill(now_ms);
        let cap = u64::from(self.burst) * 1000;
        self.milli_tokens = (self.milli_tokens + u64::from(count) * 1000).min(cap);
    }

    /// Takes `count` tokens, or none and returns how long until they would be there.
    pub fn take(&mut self, count: u32, now_ms: u64) -> Result<(), u32> {
        self.refill(now_ms);
        let need = u64::from(count) * 1000;
        if count > self.burst {
            return Err(u32::MAX);
        }
        if self.milli_tokens >= need {
            self.milli_tokens -= need;
            Ok(())
        } else {
            let missing = need - self.milli_tokens;
            let wait_ms = missing.div_ceil(u64::from(self.rate_per_s));
            Err(u32::try_from(wait_ms).unwrap_or(u32::MAX))
        }
    }
}

impl TokenBucket {
    /// How long until `count` tokens are there (0: now), or `None` when more than the
    /// burst is asked for (never).
    pub fn wait_ms(&mut self, count: u32, now_ms: u64) -> Option<u64> {
        self.refill(now_ms);
        if count > self.burst {
            return None;
        }
        let missing = (u64::from(count) * 1000).saturating_sub(self.milli_tokens);
        Some(missing.div_ceil(u64::from(self.rate_per_s)))
    }

    /// Takes up to `count` tokens: what was spent whatever the bucket held (work already
    /// done, such as frames sent), so the bucket empties rather than refusing.
    pub fn spend(&mut self, count: u32, now_ms: u64) {
        self.refill(now_ms);
        self.milli_tokens = self.milli_tokens.saturating_sub(u64::from(count) * 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let mut b = TokenBucket::new_full(1, 3, 0);
        assert!(b.take(1, 0).is_ok());
        assert!(b.take(1, 0).is_ok());
        assert!(b.take(1, 0).is_ok());
        assert_eq!(b.take(1, 0), Err(1000));
        assert_eq!(b.take(1, 400), Err(600));
        assert!(b.take(1, 1000).is_ok());
        assert!(b.take(1, 1500).is_err());
    }

    #[test]
    fn more_than_the_burst_is_never_possible() {
        let mut b = TokenBucket::new_full(20, 20, 0);
        assert_eq!(b.take(21, 1_000_000), Err(u32::MAX));
        assert!(b.take(20, 1_000_000).is_ok());
    }

    #[test]
    fn wait_ms_says_when_tokens_are_there_and_spend_empties_without_refusing() {
        let mut b = TokenBucket::new_full(1_000, 100, 0);
        assert_eq!(b.wait_ms(100, 0), Some(0));
        assert_eq!(b.wait_ms(101, 0), None, "past the burst: never");
        b.spend(150, 0);
        assert_eq!(b.available(0), 0, "spending past what is held empties it");
        assert_eq!(b.wait_ms(50, 0), Some(50));
        assert_eq!(b.wait_ms(50, 50), Some(0));
        assert_eq!(b.wait_ms(0, 0), Some(0));
    }
}
