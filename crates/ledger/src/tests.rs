use super::*;

/// The edge names accounts `tenant:user` and `tenant:room:epoch` from ids at their
/// own limits: the ledger takes the longest it can send and refuses one byte more.
#[test]
fn the_longest_accounts_the_edge_can_name_are_taken_and_one_byte_more_is_not() {
    use ovation_proto::limits::USER_ID_BYTES_MAX as USER;
    use ovation_proto::limits::{ROOM_ID_BYTES_MAX as ROOM, TENANT_ID_BYTES_MAX as TENANT};
    let tenant = "t".repeat(TENANT);
    let user = format!("{tenant}:{}", "u".repeat(USER));
    let room = format!("{tenant}:{}:{}", "r".repeat(ROOM), u64::MAX);
    let gift = |room: &str, from: &str| Gift {
        id: "g1".into(),
        room: room.into(),
        from: from.into(),
        amount: 1,
        sku: "rose".into(),
        qty: 1,
    };
    assert_eq!(gift(&room, &user).validate(), Ok(()));
    assert!(gift(&format!("{room}9"), &user).validate().is_err());
    assert!(gift(&room, &format!("{user}u")).validate().is_err());
    let deposit = |user: &str| Deposit {
        id: "d1".into(),
        user: user.into(),
        amount: 1,
    };
    assert_eq!(deposit(&user).validate(), Ok(()));
    assert!(deposit(&format!("{user}u")).validate().is_err());
}

fn gift(id: &str, from: &str, amount: u64) -> Gift {
    Gift {
        id: id.into(),
        room: "weur-r".into(),
        from: from.into(),
        amount,
        sku: "rose".into(),
        qty: 1,
    }
}

fn deposit(ledger: &mut MemoryLedger, user: &str, amount: u64) {
    ledger
        .deposit(&Deposit {
            id: format!("dep-{user}-{amount}"),
            user: user.into(),
            amount,
        })
        .unwrap();
}

#[test]
fn shard_map_is_stable() {
    let map = ShardMap::new(4).unwrap();
    // Fixed values (computed independently): a change here moves money between
    // databases, so it must fail a test.
    let users = ["alice", "bob", "carol", "dave"];
    assert_eq!(users.map(|u| map.shard_of(u)), [3, 0, 2, 3]);
    let wide = ShardMap::new(64).unwrap();
    assert_eq!(users.map(|u| wide.shard_of(u)), [7, 20, 50, 63]);
    assert_eq!(map.shard_of(""), (0xcbf2_9ce4_8422_2325_u64 % 4) as u16);
    assert!(ShardMap::new(0).is_err() && ShardMap::new(65).is_err());
}

#[test]
fn gifts_are_idempotent_and_conflicts_refused() {
    let mut ledger = MemoryLedger::new(ShardMap::new(4).unwrap());
    deposit(&mut ledger, "ana", 100);
    ledger.open_room("weur-r", "host").unwrap();
    let first = ledger.gift(&gift("g1", "ana", 30));
    assert_eq!(first.map(|r| (r.balance, r.replayed)), Ok((70, false)));
    let retry = ledger.gift(&gift("g1", "ana", 30));
    assert_eq!(
        retry.map(|r| (r.balance, r.replayed)),
        Ok((70, true)),
        "a retry returns the original answer, marked replayed"
    );
    assert_eq!(ledger.balance("ana"), 70);
    assert_eq!(
        ledger.gift(&gift("g1", "ana", 31)),
        Err(LedgerError::IdConflict)
    );
    assert_eq!(
        ledger.gift(&gift("g2", "ana", 71)),
        Err(LedgerError::InsufficientFunds {
            balance: 70,
            needed: 71
        })
    );
    assert!(ledger.audit().ok());
}

#[test]
fn settlement_moves_everything_to_the_host_once_and_closes_the_room() {
    let mut ledger = MemoryLedger::new(ShardMap::new(4).unwrap());
    ledger.open_room("weur-r", "host").unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        deposit(&mut ledger, user, 50);
        ledger
            .gift(&gift(&format!("g{i}"), user, 10 + i as u64))
            .unwrap();
    }
    let gifted: u64 = (0..20).map(|i| 10 + i as u64).sum();
    let summary = ledger.settle("weur-r").unwrap();
    assert_eq!(
        (summary.status, summary.gifted, summary.settled),
        (RoomStatus::Settled, gifted, gifted)
    );
    assert_eq!(ledger.balance("host"), gifted);
    let again = ledger.settle("weur-r").unwrap();
    assert_eq!(again.settled, gifted);
    assert_eq!(ledger.balance("host"), gifted, "settling twice pays once");
    assert_eq!(
        ledger.gift(&gift("late", "u0", 1)),
        Err(LedgerError::RoomNotOpen)
    );
    assert!(ledger.audit().ok(), "{:?}", ledger.audit());
}

/// A crash after every step of an opening: before the coordinator's activation no
/// shard takes a gift; after it every shard does (activating itself); a retried
/// open, or a settle, completes the opening; the host is paid exactly what was taken.
#[test]
fn an_interrupted_opening_takes_no_gift_until_committed_and_a_retry_completes_it() {
    let map = ShardMap::new(4).unwrap();
    let plan = plan_opening(map, "weur-r", "host");
    assert_eq!(plan.steps.len(), 8);
    // Senders in every shard.
    let senders: Vec<String> = (0..4)
        .map(|s| {
            (0..)
                .map(|i| format!("u{i}"))
                .find(|u| map.shard_of(u) == s)
                .unwrap()
        })
        .collect();
    for crash_after in 0..=plan.steps.len() {
        for settle_instead in [false, true] {
            let mut ledger = MemoryLedger::new(map);
            for user in &senders {
                deposit(&mut ledger, user, 100);
            }
            for step in plan.steps.iter().take(crash_after) {
                ledger.apply_opening_step(&plan, step).unwrap();
            }
            let committed = crash_after > 4;
            let status = ledger.room("weur-r").map(|s| s.status);
            let expected = match crash_after {
                0 => None,
                1..=4 => Some(RoomStatus::Opening),
                _ => Some(RoomStatus::Open),
            };
            assert_eq!(status, expected, "after {crash_after} steps");
            let mut taken = 0;
            for (i, user) in senders.iter().enumerate() {
                let answer = ledger.gift(&gift(&format!("early{i}"), user, 10));
                if committed {
                    assert!(answer.is_ok(), "after {crash_after}: {answer:?}");
                    taken += 10;
                } else {
                    assert_eq!(answer, Err(LedgerError::RoomNotOpen));
                }
            }
            assert_eq!(
                ledger.open_room("weur-r", "other"),
                if crash_after == 0 {
                    Ok(())
                } else {
                    Err(LedgerError::RoomHostConflict)
                },
                "the coordinator's prepare claims the host"
            );
            if crash_after == 0 {
                continue;
            }
            if settle_instead {
                let summary = ledger.settle("weur-r").unwrap();
                assert_eq!(
                    (summary.status, summary.gifted, summary.settled),
                    (RoomStatus::Settled, taken, taken)
                );
            } else {
                ledger.open_room("weur-r", "host").unwrap();
                assert_eq!(ledger.room("weur-r").unwrap().status, RoomStatus::Open);
                for (i, user) in senders.iter().enumerate() {
                    ledger.gift(&gift(&format!("late{i}"), user, 5)).unwrap();
                    taken += 5;
                }
                assert_eq!(ledger.settle("weur-r").unwrap().settled, taken);
            }
            assert_eq!(ledger.balance("host"), taken);
            assert!(ledger.audit().ok(), "{:?}", ledger.audit());
        }
    }
}

/// A balance stops at 2^53 − 1 minor units (`LEDGER_BALANCE_MAX`), the largest integer a
/// JavaScript number carries: a deposit reaching it exactly is taken, one minor unit past
/// it is refused with nothing changed (again when retried), and a gift makes room again.
#[test]
fn a_deposit_past_the_largest_balance_is_refused_and_changes_nothing() {
    let mut ledger = MemoryLedger::new(ShardMap::new(4).unwrap());
    let whole = BALANCE_MAX / AMOUNT_MAX;
    for k in 0..whole {
        ledger
            .deposit(&Deposit {
                id: format!("d{k}"),
                user: "rich".into(),
                amount: AMOUNT_MAX,
            })
            .unwrap();
    }
    let rest = BALANCE_MAX - whole * AMOUNT_MAX;
    let last = |id: &str, amount: u64| Deposit {
        id: id.into(),
        user: "rich".into(),
        amount,
    };
    assert_eq!(ledger.deposit(&last("to-the-limit", rest)), Ok(BALANCE_MAX));
    let audit = ledger.audit();
    for _ in 0..2 {
        assert_eq!(
            ledger.deposit(&last("one-past", 1)),
            Err(LedgerError::BalanceLimit {
                balance: BALANCE_MAX,
                amount: 1
            })
        );
        assert_eq!(ledger.balance("rich"), BALANCE_MAX);
        assert_eq!(ledger.audit(), audit, "a refused deposit moves nothing");
    }
    assert_eq!(
        LedgerError::BalanceLimit {
            balance: BALANCE_MAX,
            amount: 1
        }
        .code(),
        "balance_limit"
    );
    ledger.open_room("weur-r", "host").unwrap();
    ledger.gift(&gift("g1", "rich", 5)).unwrap();
    assert_eq!(ledger.deposit(&last("one-past", 5)), Ok(BALANCE_MAX));
    assert_eq!(check_balance_after(0, BALANCE_MAX), Ok(()));
    assert!(check_balance_after(u64::MAX, 1).is_err(), "no overflow");
}

/// A shard's treasury mints at most 2^56 minor units (`LEDGER_SHARD_MINTED_MAX`), so no
/// account leaves an `i64`: a deposit reaching the bound is taken, one past it is
/// refused `treasury_limit` with nothing moved, and its retry gets the same refusal. The
/// shard's history is set near the bound (2^56 of deposits would be 72 thousand).
#[test]
fn a_deposit_past_the_treasurys_bound_is_refused_and_changes_nothing() {
    let mut ledger = MemoryLedger::new(ShardMap::new(1).unwrap());
    let history = i128::from(MINTED_MAX - 5);
    ledger.shards[0].add(Account::Treasury, -history);
    ledger.shards[0].add(Account::User("earlier".into()), history);
    let deposit = |id: &str, user: &str, amount: u64| Deposit {
        id: id.into(),
        user: user.into(),
        amount,
    };
    assert_eq!(ledger.deposit(&deposit("d1", "ana", 5)), Ok(5));
    let audit = ledger.audit();
    let refused = LedgerError::TreasuryLimit {
        minted: MINTED_MAX,
        amount: 1,
    };
    for _ in 0..2 {
        assert_eq!(
            ledger.deposit(&deposit("d2", "bob", 1)),
            Err(refused.clone())
        );
        assert_eq!(ledger.balance("bob"), 0);
        assert_eq!(ledger.audit(), audit, "a refused deposit moves nothing");
    }
    assert_eq!((refused.code(), refused.status()), ("treasury_limit", 409));
    // A retry of the deposit that was taken still gets its answer.
    assert_eq!(ledger.deposit(&deposit("d1", "ana", 5)), Ok(5));
    assert_eq!(check_minted_after(0, MINTED_MAX), Ok(()));
    assert!(check_minted_after(u64::MAX, 1).is_err(), "no overflow");
}
