//! When the run's next comment, like and churn are due (`Schedule`: a steady rate from
//! one start), and which viewer does it.

use super::shared::Shared;
use super::PICK_TRIES;
use crate::Lcg;

/// Picks a random connected viewer of `room` (not a sender when `senders_too` is false).
pub(super) fn pick_viewer(
    shared: &Shared,
    rng: &mut Lcg,
    room: usize,
    senders_too: bool,
) -> Option<usize> {
    let members = &shared.members[room];
    if members.is_empty() {
        return None;
    }
    (0..PICK_TRIES).find_map(|_| {
        let viewer = members[rng.below(members.len() as u64) as usize];
        let state = &shared.viewers[viewer];
        (state.is_connected() && (senders_too || !state.is_sender)).then_some(viewer)
    })
}

/// A stream of events at a steady rate: event `n` is due at `start_us + n / rate`.
pub(super) struct Schedule {
    start_us: u64,
    interval_us: f64,
    pub(super) next: u64,
}

impl Schedule {
    pub(super) fn new(start_us: u64, per_s: f64) -> Schedule {
        Schedule {
            start_us,
            interval_us: if per_s > 0.0 {
                1e6 / per_s
            } else {
                f64::INFINITY
            },
            next: 0,
        }
    }

    /// When the next event is due (`u64::MAX`: never).
    pub(super) fn due_us(&self) -> u64 {
        let offset = self.next as f64 * self.interval_us;
        if offset.is_finite() {
            self.start_us + offset as u64
        } else {
            u64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_space_events_evenly_and_never_fire_at_rate_zero() {
        let mut schedule = Schedule::new(1_000, 4.0);
        let dues: Vec<u64> = (0..3)
            .map(|_| {
                let due = schedule.due_us();
                schedule.next += 1;
                due
            })
            .collect();
        assert_eq!(dues, [1_000, 251_000, 501_000]);
        assert_eq!(Schedule::new(0, 0.0).due_us(), u64::MAX);
    }
}
