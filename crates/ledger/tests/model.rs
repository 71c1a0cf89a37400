//! Model-based property test: the sharded ledger (with settlement crashing at random
//! steps and being re-run) against a plain, unsharded oracle.

use ovation_ledger::{
    plan_settlement, Deposit, Gift, LedgerError, MemoryLedger, RoomStatus, ShardMap,
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
    Open {
        room: u8,
        host: u8,
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
        2 => (0u8..3, 0u8..8).prop_map(|(room, host)| Op::Open { room, host }),
        1 => (0u8..3, 0u8..20).prop_map(|(room, crash_after)| Op::Settle { room, crash_after }),
    ]
}

/// The oracle: one map of balances, no shards, no settlement steps.
#[derive(Default)]
struct Oracle {
    balances: BTreeMap<String, u64>,
    /// (owner, id) → (fingerprint, result): ids are scoped to the paying user.
    transfers: BTreeMap<(String, String), (String, u64)>,
    rooms: BTreeMap<String, (String, bool, u64)>, // host, open, gifted
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
                            None => Err(LedgerError::RoomUnknown),
                            Some((_, false, _)) => Err(LedgerError::RoomNotOpen),
                            Some((_, true, gifted)) => {
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
                        },
                    };
                    prop_assert_eq!(ledger.gift(&g).map(|r| r.balance), expected);
                }
                Op::Open { room: r, host } => {
                    let expected = match oracle.rooms.get(&room(r)) {
                        Some((h, _, _)) if *h == user(host) => Ok(()),
                        Some(_) => Err(LedgerError::RoomHostConflict),
                        None => {
                            oracle.rooms.insert(room(r), (user(host), true, 0));
                            Ok(())
                        }
                    };
                    prop_assert_eq!(ledger.open_room(&room(r), &user(host)), expected);
                }
                Op::Settle { room: r, crash_after } => {
                    let Some(summary) = ledger.room(&room(r)) else {
                        prop_assert!(!oracle.rooms.contains_key(&room(r)));
                        continue;
                    };
                    // A crash after some steps: the room stops taking gifts where it was
                    // cleared, and a full re-run finishes exactly once.
                    let plan = plan_settlement(map, &room(r), &summary.host);
                    for step in plan.steps.iter().take(usize::from(crash_after)) {
                        ledger.apply_step(&plan, step);
                    }
                    prop_assert!(ledger.audit().balances_sum == 0);
                    let settled = ledger.settle(&room(r)).unwrap();
                    let (host, open, gifted) = oracle.rooms.get_mut(&room(r)).unwrap();
                    if *open {
                        *open = false;
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
