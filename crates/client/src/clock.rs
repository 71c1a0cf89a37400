//! NTP-style clock offset: four timestamps per sample, keep the low-RTT quarter, median.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use ovation_proto::limits::CLIENT_CLOCK_SAMPLES_MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    offset_ms: i64,
    rtt_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ClockSync {
    samples: VecDeque<Sample>,
    offset_ms: Option<i64>,
}

impl ClockSync {
    /// `sent_ms` and `received_ms` on the client clock; `server_received_ms` and
    /// `server_sent_ms` on the server clock (the Pong's time and its batch's time).
    pub fn add_sample(
        &mut self,
        sent_ms: u64,
        server_received_ms: u64,
        server_sent_ms: u64,
        received_ms: u64,
    ) {
        if received_ms < sent_ms || server_sent_ms < server_received_ms {
            return; // not a sample from this universe; ignore rather than skew
        }
        let server_hold_ms = server_sent_ms - server_received_ms;
        let rtt_ms = (received_ms - sent_ms).saturating_sub(server_hold_ms);
        let offset_ms = ((server_received_ms as i64 - sent_ms as i64)
            + (server_sent_ms as i64 - received_ms as i64))
            / 2;
        if self.samples.len() == CLIENT_CLOCK_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { offset_ms, rtt_ms });
        self.offset_ms = Some(Self::estimate(&self.samples));
    }

    fn estimate(samples: &VecDeque<Sample>) -> i64 {
        assert!(!samples.is_empty());
        let mut by_rtt: Vec<Sample> = samples.iter().copied().collect();
        insertion_sort_by_key(&mut by_rtt, |s| s.rtt_ms);
        // The lowest-RTT quarter (at least three, when there are three): their offset
        // error is bounded by their small RTT; the median then drops the odd one out.
        let kept = (by_rtt.len() / 4).max(by_rtt.len().min(3));
        let mut offsets: Vec<i64> = by_rtt[..kept].iter().map(|s| s.offset_ms).collect();
        insertion_sort_by_key(&mut offsets, |o| *o);
        let mid = offsets.len() / 2;
        if offsets.len() % 2 == 1 {
            offsets[mid]
        } else {
            (offsets[mid - 1] + offsets[mid]) / 2
        }
    }

    /// Server clock minus client clock, once there is a sample.
    pub fn offset_ms(&self) -> Option<i64> {
        self.offset_ms
    }

    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    pub fn server_now(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.offset_ms.unwrap_or(0))
    }
}

/// Stable, in place, for the few (≤ `CLIENT_CLOCK_SAMPLES_MAX`) samples here: the slice
/// sorts of `core` cost ~8 KB of wasm, downloaded by every viewer, for 32 elements.
fn insertion_sort_by_key<T: Copy, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    debug_assert!(items.len() <= CLIENT_CLOCK_SAMPLES_MAX);
    for i in 1..items.len() {
        let item = items[i];
        let mut j = i;
        while j > 0 && key(&items[j - 1]) > key(&item) {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_delay_gives_the_exact_offset() {
        let mut clock = ClockSync::default();
        // Server is 1000 ms ahead; 40 ms each way; server holds 10 ms.
        clock.add_sample(0, 1040, 1050, 90);
        assert_eq!(clock.offset_ms(), Some(1000));
        assert_eq!(clock.server_now(5), 1005);
    }

    #[test]
    fn high_rtt_samples_are_outvoted() {
        let mut clock = ClockSync::default();
        for i in 0..4 {
            clock.add_sample(i * 100, i * 100 + 510, i * 100 + 510, i * 100 + 20);
        }
        // One slow, very asymmetric sample (900 ms out, 10 back) would drag the offset.
        clock.add_sample(1000, 2400, 2400, 1910);
        assert_eq!(clock.offset_ms(), Some(500));
    }

    #[test]
    fn the_insertion_sort_is_stable_and_sorts() {
        let mut items = [(3, 'a'), (1, 'b'), (3, 'c'), (0, 'd'), (1, 'e')];
        insertion_sort_by_key(&mut items, |i| i.0);
        assert_eq!(items, [(0, 'd'), (1, 'b'), (1, 'e'), (3, 'a'), (3, 'c')]);
        let mut empty: [i64; 0] = [];
        insertion_sort_by_key(&mut empty, |o| *o);
    }

    /// `CLIENT_CLOCK_SAMPLES_MAX` samples are kept; one more forgets the oldest.
    #[test]
    fn the_clock_keeps_the_last_client_clock_samples_max_samples() {
        let mut clock = ClockSync::default();
        // The first sample is the only one with an offset of 900.
        clock.add_sample(0, 920, 920, 40);
        for i in 1..CLIENT_CLOCK_SAMPLES_MAX as u64 {
            clock.add_sample(i * 100, i * 100 + 520, i * 100 + 520, i * 100 + 40);
        }
        assert_eq!(clock.samples.len(), CLIENT_CLOCK_SAMPLES_MAX);
        assert_eq!(clock.samples.front().map(|s| s.offset_ms), Some(900));
        clock.add_sample(10_000, 10_520, 10_520, 10_040);
        assert_eq!(clock.samples.len(), CLIENT_CLOCK_SAMPLES_MAX);
        assert!(clock.samples.iter().all(|s| s.offset_ms == 500));
    }

    #[test]
    fn impossible_samples_are_ignored() {
        let mut clock = ClockSync::default();
        clock.add_sample(100, 0, 0, 50);
        assert_eq!(clock.offset_ms(), None);
        assert_eq!(clock.server_now(7), 7);
    }
}
