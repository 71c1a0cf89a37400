//! The one driver of a sans-IO core inside a Durable Object. The room object and the shard
//! object each hold a core (`Room`, `Shard`) that takes `now_ms` and says when it next needs
//! time (`tick_pending` for the next flush, `poll_timeout` for its slower deadlines); this
//! module turns that into the platform's two timers, once for both:
//!
//! - ticks: while output waits for a flush, one event at a time sleeps until the tick and
//!   flushes (`run_ticks`), then hands the rest to the alarm;
//! - the alarm: armed for the core's earliest deadline, never later than one already set
//!   (`arm_alarm`); the object's `alarm` handler clears it (`alarm_fired`) and runs ticks;
//! - sockets that close or fail are forgotten by the core (`forget_socket`).
//!
//! What only an object knows (applying storage, sending to shards or to the room) is its
//! `pump`, which the driver calls after every tick.

use crate::platform::now_ms;
use ovation_room::{ConnectionId, Room, Shard};
use std::collections::HashMap;
use std::time::Duration;
use worker::{Delay, Result, State, WebSocket};

/// What the driver needs of a core.
pub(crate) trait Core {
    /// When the next flush is due, while output waits for one.
    fn tick_pending(&self) -> Option<u64>;
    /// The earliest of the core's deadlines (lifetimes, sweeps, refreshes, the next tick).
    fn poll_timeout(&self) -> Option<u64>;
    fn handle_timeout(&mut self, now_ms: u64);
    fn disconnect(&mut self, connection: ConnectionId, now_ms: u64);
    /// The runtime answered this socket's heartbeat at `at_ms` (without waking us).
    fn touch(&mut self, connection: ConnectionId, at_ms: u64);
    /// Whether the sockets' liveness has something due (only then are the heartbeats
    /// worth reading: a pass over every socket).
    fn sweep_due(&self, now_ms: u64) -> bool;
}

impl Core for Room {
    fn tick_pending(&self) -> Option<u64> {
        Room::tick_pending(self)
    }
    fn poll_timeout(&self) -> Option<u64> {
        Room::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        Room::handle_timeout(self, now_ms)
    }
    fn disconnect(&mut self, connection: ConnectionId, now_ms: u64) {
        Room::disconnect(self, connection, now_ms)
    }
    fn touch(&mut self, connection: ConnectionId, at_ms: u64) {
        Room::touch(self, connection, at_ms)
    }
    fn sweep_due(&self, now_ms: u64) -> bool {
        Room::sweep_due(self, now_ms)
    }
}

impl Core for Shard {
    fn tick_pending(&self) -> Option<u64> {
        Shard::tick_pending(self)
    }
    fn poll_timeout(&self) -> Option<u64> {
        Shard::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        Shard::handle_timeout(self, now_ms)
    }
    fn disconnect(&mut self, connection: ConnectionId, now_ms: u64) {
        Shard::disconnect(self, connection, now_ms)
    }
    fn touch(&mut self, connection: ConnectionId, at_ms: u64) {
        Shard::touch(self, connection, at_ms)
    }
    fn sweep_due(&self, now_ms: u64) -> bool {
        Shard::sweep_due(self, now_ms)
    }
}

/// The driver's own state, kept in each object's memory.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// An event is sleeping until the next tick: others leave the flush to it.
    flushing: bool,
    /// The alarm set, if any (an earlier one is never replaced by a later one).
    alarm_at_ms: Option<u64>,
}

/// What the driver borrows from an object's memory for one step.
pub(crate) struct Driven<'a, C> {
    /// Absent until the object knows its room (a fresh or unplaced object).
    pub core: Option<&'a mut C>,
    pub sockets: &'a mut HashMap<ConnectionId, WebSocket>,
    pub timers: &'a mut Timers,
}

/// A Durable Object the driver runs.
pub(crate) trait Host {
    type Core: Core;
    fn state(&self) -> &State;
    /// Lends the core, the sockets and the timers (one `RefCell` borrow, never held across
    /// an await).
    fn with_driven<R>(&self, f: impl FnOnce(Driven<'_, Self::Core>) -> R) -> R;
    /// Applies the core's outputs (what only this object knows how to do).
    async fn pump(&self) -> Result<()>;
}

/// What the next step of the tick loop is.
enum Next {
    /// Another event is already sleeping until the tick.
    AlreadyFlushing,
    /// No output waits: the alarm takes over.
    Idle,
    TickAt(u64),
}

/// Flushes ticks while output is pending, then arms the alarm for what remains.
pub(crate) async fn run_ticks<H: Host>(host: &H) -> Result<()> {
    loop {
        let next = host.with_driven(|d| {
            if d.timers.flushing {
                return Next::AlreadyFlushing;
            }
            match d.core.and_then(|core| core.tick_pending()) {
                Some(at) => {
                    d.timers.flushing = true;
                    Next::TickAt(at)
                }
                None => Next::Idle,
            }
        });
        let at = match next {
            Next::AlreadyFlushing => return Ok(()),
            Next::Idle => break,
            Next::TickAt(at) => at,
        };
        let wait_ms = at.saturating_sub(now_ms());
        if wait_ms > 0 {
            Delay::from(Duration::from_millis(wait_ms)).await;
        }
        host.with_driven(|d| {
            d.timers.flushing = false;
            if let Some(core) = d.core {
                timeout(host.state(), d.sockets, core, now_ms().max(at));
            }
        });
        host.pump().await?;
    }
    arm_alarm(host).await
}

/// Arms the alarm for the core's earliest deadline, unless an earlier one is set.
pub(crate) async fn arm_alarm<H: Host>(host: &H) -> Result<()> {
    arm_alarm_by(host, None).await
}

/// Arms the alarm for the core's earliest deadline or `also_at_ms` (work of the object's
/// own the alarm's pump does, such as charges left for it), unless an earlier one is set.
pub(crate) async fn arm_alarm_by<H: Host>(host: &H, also_at_ms: Option<u64>) -> Result<()> {
    let (wanted, current) = host.with_driven(|d| {
        let core = d.core.and_then(|core| core.poll_timeout());
        let wanted = match (core, also_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (wanted, d.timers.alarm_at_ms)
    });
    let Some(wanted) = wanted else {
        return Ok(());
    };
    if current.is_some_and(|set| set <= wanted) {
        return Ok(()); // an earlier alarm will re-arm
    }
    let offset_ms = wanted.saturating_sub(now_ms()).max(1);
    host.state()
        .storage()
        .set_alarm(Duration::from_millis(offset_ms))
        .await?;
    host.with_driven(|d| d.timers.alarm_at_ms = Some(wanted));
    Ok(())
}

/// Whether an alarm at `at_ms` is wanted: none is set as early.
pub(crate) fn alarm_wanted<H: Host>(host: &H, at_ms: u64) -> bool {
    host.with_driven(|d| d.timers.alarm_at_ms.is_none_or(|set| set > at_ms))
}

/// The caller set the alarm at `at_ms` itself (in one write with its records).
pub(crate) fn alarm_set_with_writes<H: Host>(host: &H, at_ms: u64) {
    host.with_driven(|d| d.timers.alarm_at_ms = Some(at_ms));
}

/// The object's storage was replaced (a new room): no alarm is set any more.
pub(crate) fn alarm_cleared<H: Host>(host: &H) {
    host.with_driven(|d| d.timers.alarm_at_ms = None);
}

/// Runs the core's deadlines at `now_ms`. When the sockets' liveness is due, the heartbeats
/// the runtime answered alone count as signs of life first, whichever event got here (a
/// tick or the alarm): a sweep without them would close live, silent viewers as stale.
/// Reading them is a pass over every socket, so only then.
fn timeout<C: Core>(
    state: &State,
    sockets: &HashMap<ConnectionId, WebSocket>,
    core: &mut C,
    now_ms: u64,
) {
    if core.sweep_due(now_ms) {
        for (id, at_ms) in crate::sockets::heartbeats(state, sockets) {
            core.touch(id, at_ms);
        }
    }
    core.handle_timeout(now_ms);
}

/// The alarm fired (the object is loaded): the core's deadlines run (`timeout`), then
/// ticks and the next alarm.
pub(crate) async fn alarm_fired<H: Host>(host: &H) -> Result<()> {
    host.with_driven(|d| {
        d.timers.alarm_at_ms = None;
        if let Some(core) = d.core {
            timeout(host.state(), d.sockets, core, now_ms());
        }
    });
    host.pump().await?;
    run_ticks(host).await
}

/// Runs the core's deadlines if one is due (a tick or a slower one), the pump, and the
/// ticks after it; then arms the alarm. For an event that has been busy elsewhere (the
/// alarm's charges) while the core's deadlines came due: no other alarm fires meanwhile.
pub(crate) async fn catch_up<H: Host>(host: &H) -> Result<()> {
    let due = host.with_driven(|d| {
        let now = now_ms();
        let Some(core) = d.core else {
            return false;
        };
        if d.timers.flushing || core.poll_timeout().is_none_or(|at| at > now) {
            return false;
        }
        timeout(host.state(), d.sockets, core, now);
        true
    });
    if due {
        host.pump().await?;
    }
    run_ticks(host).await
}

/// The socket is gone (closed or failed): the core forgets its connection.
pub(crate) fn forget_socket<H: Host>(host: &H, ws: &WebSocket) {
    if let Some(id) = crate::sockets::connection_of(ws) {
        host.with_driven(|d| {
            d.sockets.remove(&id);
            if let Some(core) = d.core {
                core.disconnect(id, now_ms());
            }
        });
    }
}
