use super::*;

fn gift(id: &str, from: &str, amount: u64) -> Gift {
    Gift {
        id: id.into(),
        room: "weur-show".into(),
        from: from.into(),
        amount,
        sku: "rose".into(),
        qty: 1,
    }
}

/// Every stripe of the show open, and the given balances.
fn state(balances: &[(&str, u64)]) -> BatchState {
    let mut state = BatchState::default();
    for stripe in 0..ROOM_STRIPES {
        state
            .stripes
            .insert(("weur-show".into(), stripe), RoomStatus::Open);
    }
    for (user, balance) in balances {
        state.balances.insert(user_account(user), *balance);
    }
    state
}

fn plan(shard: ShardId, gifts: &[Gift], state: &BatchState) -> Option<BatchPlan> {
    plan_batch(shard, &gifts.iter().collect::<Vec<_>>(), state)
}

fn receipt(balance: u64) -> GiftReceipt {
    GiftReceipt {
        balance,
        replayed: false,
    }
}

#[test]
fn a_refused_gift_leaves_its_neighbours_and_the_sender_s_balance_alone() {
    let gifts = [
        gift("a", "ana", 30),
        gift("b", "ana", 80),
        gift("c", "ana", 50),
    ];
    let plan = plan(1, &gifts, &state(&[("ana", 100)])).expect("planned");
    assert_eq!(plan.outcomes[0].as_ref().ok(), Some(&receipt(70)));
    assert!(matches!(
        plan.outcomes[1],
        Err(StoreError::Ledger(LedgerError::InsufficientFunds {
            balance: 70,
            needed: 80
        }))
    ));
    assert_eq!(plan.outcomes[2].as_ref().ok(), Some(&receipt(20)));
    // One debit for the sender, from the balance read to what is left.
    assert_eq!(plan.debits, vec![(user_account("ana"), 100, 20)]);
    assert_eq!(plan.transfers.len(), 2);
    let credited: i64 = plan.credits.iter().map(|c| c.2).sum();
    assert_eq!(credited, 80);
}

#[test]
fn a_copy_gets_the_original_answer_and_another_gift_under_its_id_a_conflict() {
    let mut recorded = state(&[("ana", 100)]);
    recorded.transfers.insert(
        ("ana".into(), "old".into()),
        (gift("old", "ana", 5).fingerprint(), 95),
    );
    let gifts = [
        gift("old", "ana", 5),
        gift("new", "ana", 10),
        gift("new", "ana", 10),
        gift("new", "ana", 11),
        gift("old", "ana", 6),
    ];
    let plan = plan(1, &gifts, &recorded).expect("planned");
    assert_eq!(
        plan.outcomes[0].as_ref().ok(),
        Some(&GiftReceipt::replayed(95))
    );
    assert_eq!(plan.outcomes[1].as_ref().ok(), Some(&receipt(90)));
    assert_eq!(
        plan.outcomes[2].as_ref().ok(),
        Some(&GiftReceipt::replayed(90))
    );
    for conflict in [3, 4] {
        assert!(matches!(
            plan.outcomes[conflict],
            Err(StoreError::Ledger(LedgerError::IdConflict))
        ));
    }
    assert_eq!(plan.transfers.len(), 1, "only `new` is written, once");
    assert_eq!(plan.debits, vec![(user_account("ana"), 100, 90)]);
}

#[test]
fn the_id_is_checked_before_the_room_and_the_room_before_the_funds() {
    let mut closed = state(&[("ana", 100)]);
    for status in closed.stripes.values_mut() {
        *status = RoomStatus::Settling;
    }
    closed.transfers.insert(
        ("ana".into(), "old".into()),
        (gift("old", "ana", 5).fingerprint(), 95),
    );
    let gifts = [gift("old", "ana", 5), gift("poor", "ana", 1_000)];
    let plan = plan(1, &gifts, &closed).expect("planned");
    assert_eq!(
        plan.outcomes[0].as_ref().ok(),
        Some(&GiftReceipt::replayed(95))
    );
    assert!(matches!(
        plan.outcomes[1],
        Err(StoreError::Ledger(LedgerError::RoomNotOpen))
    ));
    assert!(plan.transfers.is_empty() && plan.debits.is_empty() && plan.credits.is_empty());
}

#[test]
fn a_room_still_opening_is_refused_on_the_coordinator_and_left_to_the_slow_path_elsewhere() {
    let mut opening = state(&[("ana", 100)]);
    for status in opening.stripes.values_mut() {
        *status = RoomStatus::Opening;
    }
    let gifts = [gift("a", "ana", 5)];
    let on_coordinator = plan(COORDINATOR_SHARD, &gifts, &opening).expect("planned");
    assert!(matches!(
        on_coordinator.outcomes[0],
        Err(StoreError::Ledger(LedgerError::RoomNotOpen))
    ));
    assert!(plan(1, &gifts, &opening).is_none());
}

/// The one-statement write of a PostgreSQL batch writes nothing when what it planned
/// on no longer holds: a balance changed since the read, a transfer id taken, a
/// stripe no longer open. (Then the batch goes statement by statement.)
#[tokio::test]
async fn a_postgres_batch_write_planned_on_stale_rows_writes_nothing() {
    let urls = crate::postgres_admin::fresh_databases(
        &format!("ovation_unit_{}_stale", std::process::id()),
        1,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432");
    let ledger = SqlLedger::connect(&urls).await.expect("postgres");
    ledger.open_room("weur-show", "star").await.unwrap();
    let deposit = |id: &str, amount| Deposit {
        id: id.into(),
        user: "ana".into(),
        amount,
    };
    ledger.deposit(&deposit("d1", 100)).await.unwrap();
    let pool = ledger.pool(0);
    let write = |plan: &BatchPlan| {
        sqlx::query(BATCH_WRITE_POSTGRES)
            .bind(json(&plan.debits))
            .bind(json(&plan.transfers))
            .bind(json(&plan.credits))
            .bind(plan.debits.len() as i64)
            .bind(plan.transfers.len() as i64)
            .bind(plan.credits.len() as i64)
            .execute(pool)
    };
    let gifts = [gift("g1", "ana", 30)];
    let stale = plan(0, &gifts, &state(&[("ana", 100)])).expect("planned");
    // A deposit lands between the batch's read and its write.
    ledger.deposit(&deposit("d2", 50)).await.unwrap();
    let refused = write(&stale).await.expect_err("a stale balance");
    assert!(
        refused.to_string().contains(BATCH_ROWS_CHANGED),
        "{refused}"
    );
    // A deposit took the gift's id (its owner is the sender) meanwhile.
    let current = plan(0, &[gift("d2", "ana", 30)], &state(&[("ana", 150)])).unwrap();
    let refused = write(&current).await.expect_err("an id taken");
    assert!(
        refused.to_string().contains(BATCH_ROWS_CHANGED),
        "{refused}"
    );
    assert_eq!(ledger.balance("ana").await.unwrap(), 150);
    assert_eq!(ledger.room("weur-show").await.unwrap().gifted, 0);
    // The room settles between the read (stripes open) and the write.
    ledger.settle("weur-show").await.unwrap();
    let fresh = plan(0, &gifts, &state(&[("ana", 150)])).unwrap();
    let refused = write(&fresh).await.expect_err("a stripe settled");
    assert!(
        refused.to_string().contains(BATCH_ROWS_CHANGED),
        "{refused}"
    );
    assert_eq!(ledger.balance("ana").await.unwrap(), 150);
    // And through the loop, the gift is refused for the room, nothing moves.
    assert!(matches!(
        ledger.gift(&gifts[0]).await,
        Err(StoreError::Ledger(LedgerError::RoomNotOpen))
    ));
    let audit = ledger.audit().await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    ledger.close().await;
    crate::postgres_admin::drop_databases(&format!("ovation_unit_{}_", std::process::id()), None)
        .await
        .unwrap();
}

#[test]
fn a_sender_without_an_account_has_nothing_to_give() {
    let plan = plan(1, &[gift("a", "bob", 1)], &state(&[])).expect("planned");
    assert!(matches!(
        plan.outcomes[0],
        Err(StoreError::Ledger(LedgerError::InsufficientFunds {
            balance: 0,
            needed: 1
        }))
    ));
    assert!(plan.debits.is_empty());
}
