//! Model-based property test: the sharded ledger (with openings and settlements crashing
//! at random steps and being re-run) against a plain, unsharded oracle.

use ovation_ledger::{
    plan_opening, plan_settlement, Deposit, Gift, LedgerError, MemoryLedger, RoomStatus, ShardMap,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Deposit {
        user: u8,
        amount: u64,
        id: u8,
    },
    Gift {
        user: u8,
        room: u8,
        amount: u64,
        id: u8,
        retry_changed: bool,
    },
    /// Open, but crash after `crash_after` steps when it is below the plan's length; a
    /// later open (or settle) finishes the job.
    Open {
        room: u8,
        host: u8,
        crash_after: u8,
    },
    /// Settle, but crash after `crash_after` steps; later settles finish the job.
    Settle {
        room: u8,
        crash_after: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..8, 1u64..500, 0u8..40).prop_map(|(user, amount, id)| Op::Deposit { user, amount, id }),
        6 => (0u8..8, 0u8..3, 1u64..200, 0u8..60, any::<bool>())
            .prop_map(|(user, room, amount, id, retry_changed)| Op::Gift { user, room, amount, id, retry_changed }),
        2 => (0u8..3, 0u8..8, 0u8..16).prop_map(|(room, host, crash_after)| Op::Open { room, host, crash_after }),
        1 => (0u8..3, 0u8..20).prop_map(|(room, crash_after)| Op::Settle { room, crash_after }),
    ]
}

/// The oracle: one map of balances, no shards, no settlement steps.
#[derive(Default)]
struct Oracle {
    balances: BTreeMap<String, u64>,
    /// (owner, id) → (fingerprint, result): ids are scoped to the paying user.
    transfers: BTreeMap<(String, String), (String, u64)>,
    rooms: BTreeMap<String, OracleRoom>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The host is claimed, gifts are refused.
    Opening,
    Open,
    Closed,
}

struct OracleRoom {
    host: String,
    phase: Phase,
    gifted: u64,
}

fn user(n: u8) -> String {
    format!("user-{n}")
}
fn room(n: u8) -> String {
    format!("weur-room-{n}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn sharded_ledger_matches_the_oracle(shards in 1u16..6, ops in proptest::collection::vec(op(), 1..120)) {
        let map = ShardMap::new(shards).unwrap();
        let mut ledger = MemoryLedger::new(map);
        let mut oracle = Oracle::default();
        for op in ops {
            match op {
                Op::Deposit { user: u, amount, id } => {
                    let d = Deposit { id: format!("d{id}"), user: user(u), amount };
                    let key = (user(u), d.id.clone());
                    let expected = match oracle.transfers.get(&key) {
                        Some((fp, result)) if *fp == d.fingerprint() => Ok(*result),
                        Some(_) => Err(LedgerError::IdConflict),
                        None => {
                            let b = oracle.balances.entry(user(u)).or_default();
                            *b += amount;
                            oracle.transfers.insert(key, (d.fingerprint(), *b));
                            Ok(*b)
                        }
                    };
                    prop_assert_eq!(ledger.deposit(&d), expected);
                }
                Op::Gift { user: u, room: r, amount, id, retry_changed } => {
                    let mut g = Gift { id: format!("g{id}"), room: room(r), from: user(u), amount, sku: "rose".into(), qty: 1 };
                    let key = (user(u), g.id.clone());
                    if retry_changed && oracle.transfers.contains_key(&key) {
                        g.qty = 2; // same id, different body
                    }
                    let expected = match oracle.transfers.get(&key) {
                        Some((fp, result)) if *fp == g.fingerprint() => Ok(*result),
                        Some(_) => Err(LedgerError::IdConflict),
                        None => match oracle.rooms.get_mut(&g.room) {
                            Some(OracleRoom { phase: Phase::Open, gifted, .. }) => {
                                let b = oracle.balances.entry(user(u)).or_default();
                                if *b < amount {
                                    Err(LedgerError::InsufficientFunds { balance: *b, needed: amount })
                                } else {
                                    *b -= amount;
                                    *gifted += amount;
                                    oracle.transfers.insert(key, (g.fingerprint(), *b));
                                    Ok(*b)
                                }
                            }
                            // Unknown, still opening, or closed: not open for gifts.
                            _ => Err(LedgerError::RoomNotOpen),
                        },
                    };
                    prop_assert_eq!(ledger.gift(&g).map(|r| r.balance), expected);
                }
                Op::Open { room: r, host, crash_after } => {
                    let plan = plan_opening(map, &room(r), &user(host));
                    let full = usize::from(crash_after) >= plan.steps.len();
                    let steps = usize::from(crash_after).min(plan.steps.len());
                    let answer = if full {
                        ledger.open_room(&room(r), &user(host))
                    } else {
                        // A crash after `steps` steps; only a host conflict refuses one.
                        plan.steps.iter().take(steps).try_for_each(|step| ledger.apply_opening_step(&plan, step))
                    };
                    let expected = match oracle.rooms.get(&room(r)) {
                        Some(existing) if steps > 0 && existing.host != user(host) => Err(LedgerError::RoomHostConflict),
                        _ => Ok(()),
                    };
                    prop_assert_eq!(&answer, &expected);
                    if expected.is_ok() && steps > 0 {
                        // The coordinator's prepare (the first step) claims the host; its
                        // activation (step shards + 1) is the commit point.
                        let committed = steps > usize::from(shards);
                        let entry = oracle.rooms.entry(room(r)).or_insert(OracleRoom { host: user(host), phase: Phase::Opening, gifted: 0 });
                        if committed && entry.phase == Phase::Opening {
                            entry.phase = Phase::Open;
                        }
                    }
                    let status = ledger.room(&room(r)).map(|s| s.status);
                    let expected_status = oracle.rooms.get(&room(r)).map(|o| match o.phase {
                        Phase::Opening => RoomStatus::Opening,
                        Phase::Open => RoomStatus::Open,
                        Phase::Closed => RoomStatus::Settled,
                    });
                    prop_assert_eq!(status, expected_status);
                }
                Op::Settle { room: r, crash_after } => {
                    let Some(summary) = ledger.room(&room(r)) else {
                        prop_assert!(!oracle.rooms.contains_key(&room(r)));
                        continue;
                    };
                    // A crash after some steps: the room stops taking gifts where it was
                    // cleared, and a full re-run finishes exactly once.
                    // (A settle runs the opening's steps first: partial settlement steps
                    // only exist for a room whose opening committed.)
                    let plan = plan_settlement(map, &room(r), &summary.host);
                    let partial = if summary.status == RoomStatus::Opening { 0 } else { usize::from(crash_after) };
                    for step in plan.steps.iter().take(partial) {
                        ledger.apply_step(&plan, step);
                    }
                    prop_assert!(ledger.audit().balances_sum == 0);
                    let settled = ledger.settle(&room(r)).unwrap();
                    let OracleRoom { host, phase, gifted } = oracle.rooms.get_mut(&room(r)).unwrap();
                    // Settling a room whose opening was interrupted opens it first: it
                    // took no gifts, so the host gets nothing.
                    if *phase != Phase::Closed {
                        *phase = Phase::Closed;
                        *oracle.balances.entry(host.clone()).or_default() += *gifted;
                    }
                    prop_assert_eq!(settled.status, RoomStatus::Settled);
                    prop_assert_eq!(settled.settled, *gifted);
                    prop_assert_eq!(settled.gifted, *gifted);
                }
            }
            let audit = ledger.audit();
            prop_assert!(audit.ok(), "{:?}", audit);
            for (name, balance) in &oracle.balances {
                prop_assert_eq!(ledger.balance(name), *balance, "balance of {}", name);
            }
        }
    }
}
