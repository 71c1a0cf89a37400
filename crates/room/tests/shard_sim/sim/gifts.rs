//! Gifts in a big room: viewers on shards send them (double taps, the SDK's resends after
//! a Welcome, an application's retries under the same gift id), the room charges them at
//! a settlement service whose requests and answers get lost, and the room restarts with
//! charges in flight. At the end every gifter retries what is still open, and the
//! room's gift totals must equal what the service charged: each charge announced and
//! ranked exactly once, none announced uncharged.

use super::*;
use ovation_room::{charge_outcome, ChargeOutcome, ChargeRequest};

/// What each gifter holds at the service when the run starts: enough for a few gifts,
/// so some are refused for funds.
const BALANCE_START: u64 = 40;
/// Distinct gifts one viewer makes in a run (each id always carries the same body).
const GIFT_IDS_PER_VIEWER: u64 = 3;
/// How often (percent) a charge is lost on its way to the service, and how often the
/// service makes it and its answer is lost: either way the room hears `unavailable`.
const CHARGE_LOST_PERCENT: u64 = 8;
const CHARGE_ANSWER_LOST_PERCENT: u64 = 8;
/// Rounds of retries at the end before an open gift is a failure.
const END_ROUNDS_MAX: usize = 30;

/// The settlement service (after the ledger's rules: a gift id is charged once per user,
/// funds must suffice) and the charges on their way to it.
#[derive(Default)]
pub(crate) struct Settlement {
    in_flight: Vec<(u64, ChargeRequest)>,
    balances: BTreeMap<String, u64>,
    /// (user, gift id) → amount charged.
    charged: BTreeMap<(String, String), u64>,
    /// Nothing is lost: the end of a run.
    lossless: bool,
    pub(crate) answers_lost: u64,
    pub(crate) lost_in_crashes: u64,
}

impl Settlement {
    pub(crate) fn asked(&mut self, at_ms: u64, charge: ChargeRequest) {
        self.in_flight.push((at_ms, charge));
    }

    pub(crate) fn charged(&self, user: &str, gift_id: &str) -> bool {
        self.charged
            .contains_key(&(user.to_owned(), gift_id.to_owned()))
    }

    fn due(&mut self, now_ms: u64) -> Option<ChargeRequest> {
        let index = self.in_flight.iter().position(|(at, _)| *at <= now_ms)?;
        Some(self.in_flight.remove(index).1)
    }

    fn apply(&mut self, charge: &ChargeRequest) -> ChargeOutcome {
        let balance = self
            .balances
            .entry(charge.user.clone())
            .or_insert(BALANCE_START);
        let key = (charge.user.clone(), charge.gift_id.clone());
        if let Some(&amount) = self.charged.get(&key) {
            assert_eq!(
                amount, charge.amount,
                "{key:?} charged again at another amount"
            );
            return ChargeOutcome::Charged {
                balance: *balance,
                replayed: true,
            };
        }
        if *balance < charge.amount {
            return charge_outcome(
                402,
                br#"{"code":"insufficient_funds","message":"no funds"}"#,
            );
        }
        *balance -= charge.amount;
        self.charged.insert(key, charge.amount);
        ChargeOutcome::Charged {
            balance: *balance,
            replayed: false,
        }
    }

    /// What the room hears for one charge: the service's answer, or `unavailable` when
    /// the request or the answer was lost (the room object's fetch failed).
    fn answer(&mut self, rng: &mut Rng, charge: &ChargeRequest) -> ChargeOutcome {
        let lost = || charge_outcome(503, b"");
        if self.lossless {
            return self.apply(charge);
        }
        let roll = rng.below(100);
        if roll < CHARGE_LOST_PERCENT {
            return lost();
        }
        let outcome = self.apply(charge);
        if roll < CHARGE_LOST_PERCENT + CHARGE_ANSWER_LOST_PERCENT {
            self.answers_lost += 1;
            return lost();
        }
        outcome
    }

    /// The room object died with these charges in flight: some reached the service.
    fn room_crashed(&mut self, rng: &mut Rng) {
        for (_, charge) in std::mem::take(&mut self.in_flight) {
            if rng.chance(50) {
                let _ = self.apply(&charge);
                self.lost_in_crashes += 1;
            }
        }
    }

    fn totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for ((user, _), amount) in &self.charged {
            *totals.entry(user.clone()).or_default() += amount;
        }
        totals
    }
}

impl Sim {
    /// A viewer sends a gift: a new one or one of theirs again (a retry under the same
    /// gift id), sometimes twice at once (a double tap).
    pub(super) fn gift(&mut self, viewer: usize) {
        let k = self.rng.below(GIFT_IDS_PER_VIEWER);
        let client_id = self.client_id(viewer);
        let v = &mut self.viewers[viewer];
        let gift_id = format!("{}-g{k}", v.user);
        let frame = ClientFrame::Gift {
            client_id,
            gift_id: gift_id.clone(),
            sku: ["rose", "heart"][(k % 2) as usize].into(),
            qty: 1 + (k % 3) as u32,
        };
        v.gifts_open.insert(gift_id.clone(), frame.clone());
        v.gift_client_ids.insert(client_id, gift_id);
        if self.rng.chance(20) {
            self.send_frame(viewer, frame.clone());
        }
        self.send_frame(viewer, frame);
    }

    /// The SDK's resends after a Welcome: every open gift under the client id it last
    /// went with.
    pub(super) fn resend_gifts(&mut self) {
        for viewer in 0..self.viewers.len() {
            let v = &mut self.viewers[viewer];
            if !std::mem::take(&mut v.resend_gifts) || v.session.is_none() {
                continue;
            }
            let frames: Vec<ClientFrame> = v.gifts_open.values().cloned().collect();
            for frame in frames {
                let ClientFrame::Gift {
                    client_id, gift_id, ..
                } = &frame
                else {
                    unreachable!("only gifts are open");
                };
                let v = &mut self.viewers[viewer];
                v.gift_client_ids.insert(*client_id, gift_id.clone());
                self.send_frame(viewer, frame);
            }
        }
    }

    /// The settlement service answers the charges due.
    pub(super) fn answer_charges(&mut self) -> bool {
        let mut answered = false;
        while let Some(charge) = self.settlement.due(self.now_ms) {
            let outcome = self.settlement.answer(&mut self.rng, &charge);
            self.room
                .charge_result(charge.request, outcome, self.now_ms);
            self.pump_room();
            answered = true;
        }
        answered
    }

    /// The room object restarts: its charges in flight die with it, some after reaching
    /// the service; the host sets the catalog on the restored room, as the object does.
    pub(super) fn charges_lost_with_the_room(&mut self) {
        self.settlement.room_crashed(&mut self.rng);
    }

    pub(super) fn catalog_after_restore(&mut self) {
        self.room
            .set_gift_catalog(ovation_room::default_gift_catalog())
            .expect("the catalog");
    }

    /// Every gifter retries what is still open until nothing is (unbanned, connected,
    /// nothing lost any more); then each gift the service charged is counted once in the
    /// room's totals, and none it did not charge.
    pub(super) fn check_gifts(&mut self, seed: u64) {
        self.settlement.lossless = true;
        let banned: Vec<usize> = (0..self.viewers.len())
            .filter(|&v| self.banned.contains(&self.viewers[v].user))
            .collect();
        for viewer in banned {
            self.ban_or_unban(viewer);
        }
        for _ in 0..END_ROUNDS_MAX {
            let open: Vec<usize> = (0..self.viewers.len())
                .filter(|&v| !self.viewers[v].gifts_open.is_empty())
                .collect();
            if open.is_empty() && self.room.gifts_pending() == 0 {
                break;
            }
            for viewer in open {
                match &self.viewers[viewer].session {
                    None => self.connect(viewer),
                    // An application's retry: the same gift under a new client id.
                    Some(session) if session.welcomed => self.retry_open_gifts(viewer),
                    Some(_) => {}
                }
            }
            for _ in 0..40 {
                self.now_ms += TICK_MS;
                self.run_due();
            }
        }
        let open: Vec<(&str, Vec<&String>)> = self
            .viewers
            .iter()
            .filter(|v| !v.gifts_open.is_empty())
            .map(|v| (v.user.as_str(), v.gifts_open.keys().collect()))
            .collect();
        assert!(
            open.is_empty(),
            "seed {seed}: gifts never answered: {open:?}"
        );
        assert_eq!(self.room.gifts_pending(), 0, "seed {seed}: charges pending");
        assert_eq!(
            crate::common::gift_totals(&self.room),
            self.settlement.totals(),
            "seed {seed}: the room's gift totals are what the service charged"
        );
    }

    fn retry_open_gifts(&mut self, viewer: usize) {
        let frames: Vec<ClientFrame> = self.viewers[viewer].gifts_open.values().cloned().collect();
        for frame in frames {
            let ClientFrame::Gift {
                gift_id, sku, qty, ..
            } = frame
            else {
                unreachable!("only gifts are open");
            };
            let client_id = self.client_id(viewer);
            let retry = ClientFrame::Gift {
                client_id,
                gift_id: gift_id.clone(),
                sku,
                qty,
            };
            let v = &mut self.viewers[viewer];
            v.gifts_open.insert(gift_id.clone(), retry.clone());
            v.gift_client_ids.insert(client_id, gift_id);
            self.send_frame(viewer, retry);
        }
    }
}
