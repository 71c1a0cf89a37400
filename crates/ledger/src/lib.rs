//! Gift ledger rules, pure: no I/O, no clock.
//!
//! Balances are sharded by user ([`ShardMap`]). A room has a virtual account in every
//! shard, so a gift is one local transaction in the sender's shard: debit the viewer,
//! credit the room account, record the transfer under its id (the idempotency key).
//! Opening a room is a list of idempotent atomic steps too ([`OpeningPlan`]): prepare the
//! room in every shard (it accepts no gift yet), then activate shard 0 (the room's
//! coordinator; its activation is the commit point, after which the room is open) and
//! the other shards. A shard still preparing refuses gifts; a shard prepared but not yet
//! activated activates itself on the first gift once the coordinator is active, so a
//! crash between the steps never leaves a room open in some shards only.
//! Settlement moves each shard's room balance to the host exactly once, as a list of
//! idempotent atomic steps ([`SettlementPlan`]): per shard, move the room balance into that
//! shard's clearing account and write an outbox row with a deterministic id; then apply
//! the credit to the host in the host's shard under that id. Re-running a plan after a
//! crash at any point is safe.
//!
//! Transfer ids are idempotency keys **scoped to the paying user** (the depositor or the
//! gift's sender): they live in that user's shard, so checking them stays local. The same
//! id from the same user with a different body is `id_conflict`.
//!
//! [`MemoryLedger`] is the reference model: storage engines must behave exactly like it
//! (model-based tests compare them).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

// Limits live with every other limit in `ovation_proto::limits`; bad input beyond them is
// refused with `LedgerError::Invalid`.
pub use ovation_proto::limits::{
    GIFTS_QUEUED_PER_SHARD_MAX, GIFT_BATCH_MAX, LEDGER_AMOUNT_MAX as AMOUNT_MAX,
    LEDGER_BALANCE_MAX as BALANCE_MAX, LEDGER_QTY_MAX as QTY_MAX,
    LEDGER_ROOM_ID_BYTES_MAX as ROOM_ID_BYTES_MAX, LEDGER_SHARDS_MAX as SHARDS_MAX,
    LEDGER_SHARD_MINTED_MAX as MINTED_MAX, LEDGER_SKU_BYTES_MAX as SKU_BYTES_MAX,
    LEDGER_USER_ID_BYTES_MAX as USER_ID_BYTES_MAX, TRANSFER_ID_BYTES_MAX,
};

pub type ShardId = u16;

/// A stable map from user id to shard: FNV-1a 64 of the id, modulo the shard count.
/// Stable across versions and platforms (it decides where money lives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardMap {
    shards: u16,
}

impl ShardMap {
    pub fn new(shards: u16) -> Result<ShardMap, LedgerError> {
        if shards == 0 || shards > SHARDS_MAX {
            return Err(LedgerError::invalid("shards", "must be 1..=64"));
        }
        Ok(ShardMap { shards })
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    pub fn shard_of(&self, user: &str) -> ShardId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in user.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % u64::from(self.shards)) as ShardId
    }
}

/// Accounts inside one shard.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// Mints deposits; its balance is minus everything deposited in the shard.
    Treasury,
    User(String),
    /// The room's virtual account in this shard.
    Room(String),
    /// Holds settled room money between the two settlement steps.
    Clearing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerError {
    Invalid {
        field: &'static str,
        why: &'static str,
    },
    InsufficientFunds {
        balance: u64,
        needed: u64,
    },
    RoomNotOpen,
    RoomUnknown,
    RoomHostConflict,
    IdConflict,
    /// A deposit would take the balance past `LEDGER_BALANCE_MAX`.
    BalanceLimit {
        balance: u64,
        amount: u64,
    },
    /// A deposit would take its shard's treasury past `LEDGER_SHARD_MINTED_MAX`.
    TreasuryLimit {
        minted: u64,
        amount: u64,
    },
}

impl LedgerError {
    fn invalid(field: &'static str, why: &'static str) -> LedgerError {
        LedgerError::Invalid { field, why }
    }

    /// Stable machine-readable code (the HTTP API's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Invalid { .. } => "invalid",
            LedgerError::InsufficientFunds { .. } => "insufficient_funds",
            LedgerError::RoomNotOpen => "room_not_open",
            LedgerError::RoomUnknown => "room_not_found",
            LedgerError::RoomHostConflict => "room_host_conflict",
            LedgerError::IdConflict => "id_conflict",
            LedgerError::BalanceLimit { .. } => "balance_limit",
            LedgerError::TreasuryLimit { .. } => "treasury_limit",
        }
    }

    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            LedgerError::Invalid { .. } => 400,
            LedgerError::InsufficientFunds { .. } => 402,
            LedgerError::RoomUnknown => 404,
            LedgerError::RoomNotOpen
            | LedgerError::RoomHostConflict
            | LedgerError::IdConflict
            | LedgerError::BalanceLimit { .. }
            | LedgerError::TreasuryLimit { .. } => 409,
        }
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Invalid { field, why } => write!(f, "`{field}` {why}"),
            LedgerError::InsufficientFunds { balance, needed } => {
                write!(f, "balance {balance} is less than {needed}")
            }
            LedgerError::RoomNotOpen => f.write_str("the room is not open for gifts"),
            LedgerError::RoomUnknown => f.write_str("no such room"),
            LedgerError::RoomHostConflict => f.write_str("the room is open with another host"),
            LedgerError::IdConflict => f.write_str("this id was used for a different request"),
            LedgerError::BalanceLimit { balance, amount } => write!(
                f,
                "balance {balance} plus {amount} is past the largest balance, {BALANCE_MAX} (2^53 - 1)"
            ),
            LedgerError::TreasuryLimit { minted, amount } => write!(
                f,
                "this shard's treasury minted {minted}; {amount} more is past the most it may, {MINTED_MAX} (2^56)"
            ),
        }
    }
}

fn check_id(field: &'static str, value: &str, bytes_max: usize) -> Result<(), LedgerError> {
    if value.is_empty() {
        return Err(LedgerError::invalid(field, "must not be empty"));
    }
    if value.len() > bytes_max {
        return Err(LedgerError::invalid(field, "is too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(LedgerError::invalid(field, "contains control characters"));
    }
    Ok(())
}

fn check_amount(amount: u64) -> Result<(), LedgerError> {
    if amount == 0 || amount > AMOUNT_MAX {
        return Err(LedgerError::invalid("amount", "must be 1..=10^12"));
    }
    Ok(())
}

/// A deposit of `amount` onto `balance` stays within `LEDGER_BALANCE_MAX`. The engines
/// check the balance they read inside the deposit's transaction.
pub fn check_balance_after(balance: u64, amount: u64) -> Result<(), LedgerError> {
    if balance.saturating_add(amount) > BALANCE_MAX {
        return Err(LedgerError::BalanceLimit { balance, amount });
    }
    Ok(())
}

/// A deposit of `amount` from a shard's treasury that has minted `minted` stays within
/// `LEDGER_SHARD_MINTED_MAX`. Checked after the balance's limit, as the engines do.
pub fn check_minted_after(minted: u64, amount: u64) -> Result<(), LedgerError> {
    if minted.saturating_add(amount) > MINTED_MAX {
        return Err(LedgerError::TreasuryLimit { minted, amount });
    }
    Ok(())
}

/// Validates the ids of a room to open.
pub fn validate_room(room: &str, host: &str) -> Result<(), LedgerError> {
    validate_room_id(room)?;
    check_id("host", host, USER_ID_BYTES_MAX)
}

/// Validates a room id a request names (a room's summary, its settlement).
pub fn validate_room_id(room: &str) -> Result<(), LedgerError> {
    check_id("room", room, ROOM_ID_BYTES_MAX)
}

/// Validates a user id a request names (an account's balance).
pub fn validate_user(user: &str) -> Result<(), LedgerError> {
    check_id("user", user, USER_ID_BYTES_MAX)
}

/// A deposit request: mint `amount` from the treasury to `user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub id: String,
    pub user: String,
    pub amount: u64,
}

impl Deposit {
    pub fn validate(&self) -> Result<(), LedgerError> {
        check_id("id", &self.id, TRANSFER_ID_BYTES_MAX)?;
        check_id("user", &self.user, USER_ID_BYTES_MAX)?;
        check_amount(self.amount)
    }

    /// The canonical request body, compared when an id is reused.
    pub fn fingerprint(&self) -> String {
        format!("deposit\u{1f}{}\u{1f}{}", self.user, self.amount)
    }
}

/// A gift: `from` pays `amount` (the total for `qty` of `sku`) into `room`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gift {
    pub id: String,
    pub room: String,
    pub from: String,
    pub amount: u64,
    pub sku: String,
    pub qty: u32,
}

impl Gift {
    pub fn validate(&self) -> Result<(), LedgerError> {
        check_id("id", &self.id, TRANSFER_ID_BYTES_MAX)?;
        check_id("room", &self.room, ROOM_ID_BYTES_MAX)?;
        check_id("from", &self.from, USER_ID_BYTES_MAX)?;
        check_id("sku", &self.sku, SKU_BYTES_MAX)?;
        check_amount(self.amount)?;
        if self.qty == 0 || self.qty > QTY_MAX {
            return Err(LedgerError::invalid("qty", "must be 1..=10000"));
        }
        Ok(())
    }

    pub fn fingerprint(&self) -> String {
        format!(
            "gift\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.room, self.from, self.amount, self.sku, self.qty
        )
    }
}

/// The answer to a gift: the sender's balance after it, and whether this request was a
/// retry of one already applied (then nothing changed now, and it must not be announced
/// again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GiftReceipt {
    pub balance: u64,
    pub replayed: bool,
}

impl GiftReceipt {
    pub fn replayed(balance: u64) -> GiftReceipt {
        GiftReceipt {
            balance,
            replayed: true,
        }
    }
}

/// Room state in one shard (and, summed over shards, of the room), in the order of a
/// room's life (`Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoomStatus {
    /// Prepared by an opening that has not reached its commit point: no gifts yet. A
    /// room is `Opening` while any shard lacks it or its coordinator (shard 0) is.
    Opening,
    Open,
    /// This shard's room balance has moved to clearing; gifts are refused.
    Settling,
    Settled,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Opening => "opening",
            RoomStatus::Open => "open",
            RoomStatus::Settling => "settling",
            RoomStatus::Settled => "settled",
        }
    }

    /// The status `as_str` wrote; `None` for any other text.
    pub fn parse(text: &str) -> Option<RoomStatus> {
        [
            RoomStatus::Opening,
            RoomStatus::Open,
            RoomStatus::Settling,
            RoomStatus::Settled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The shard that coordinates a room's opening: its activation is the commit point.
pub const COORDINATOR_SHARD: ShardId = 0;

/// One idempotent step of opening a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpeningStep {
    /// In `shard`: record the room and its host (refusing another host) with its account
    /// not yet taking gifts. Applies once; the coordinator's is first, so it holds the
    /// host claim.
    Prepare { shard: ShardId },
    /// In `shard`: take gifts. The coordinator's activation (after every shard is
    /// prepared) is the commit point; another shard's may also be done by its first gift
    /// once the coordinator is active ([`may_activate`]).
    Activate { shard: ShardId },
}

/// Every step to open `room`, in order: prepare every shard (the coordinator first),
/// then activate every shard (the coordinator first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpeningPlan {
    pub room: String,
    pub host: String,
    pub steps: Vec<OpeningStep>,
}

pub fn plan_opening(map: ShardMap, room: &str, host: &str) -> OpeningPlan {
    let mut steps = Vec::with_capacity(usize::from(map.shards()) * 2);
    steps.extend((0..map.shards()).map(|shard| OpeningStep::Prepare { shard }));
    steps.extend((0..map.shards()).map(|shard| OpeningStep::Activate { shard }));
    OpeningPlan {
        room: room.to_owned(),
        host: host.to_owned(),
        steps,
    }
}

/// Whether a shard whose room is prepared (`Opening`) may take a gift, activating itself:
/// only when it is not the coordinator and the coordinator has passed the commit point.
/// `coordinator` is the coordinator's status of the room (`None`: not even prepared).
pub fn may_activate(shard: ShardId, coordinator: Option<RoomStatus>) -> bool {
    shard != COORDINATOR_SHARD && matches!(coordinator, Some(s) if s != RoomStatus::Opening)
}

/// The room's status summed over its shards' statuses (`None`: the shard lacks the room).
/// Opening until the coordinator is active and every shard is prepared; settled when
/// every shard is; settling when any shard has begun; else open (a shard prepared but
/// not yet activated counts as open: its first gift activates it).
pub fn room_status_of(shards: &[Option<RoomStatus>]) -> RoomStatus {
    let coordinator = shards
        .get(usize::from(COORDINATOR_SHARD))
        .copied()
        .flatten();
    if shards.iter().any(Option::is_none) || coordinator == Some(RoomStatus::Opening) {
        return RoomStatus::Opening;
    }
    if shards.iter().all(|s| *s == Some(RoomStatus::Settled)) {
        RoomStatus::Settled
    } else if shards
        .iter()
        .any(|s| matches!(s, Some(RoomStatus::Settling | RoomStatus::Settled)))
    {
        RoomStatus::Settling
    } else {
        RoomStatus::Open
    }
}

/// One idempotent step of settlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettlementStep {
    /// In `shard`: close the room for gifts, move its balance to clearing, and write the
    /// outbox row `credit_id` (amount = the moved balance). Applies once per `clear_id`.
    Clear {
        shard: ShardId,
        clear_id: String,
        credit_id: String,
    },
    /// In the host's shard: apply the outbox row of `source` to the host under
    /// `credit_id`, then mark the source shard's room settled. Applies once per id.
    Credit {
        source: ShardId,
        host_shard: ShardId,
        credit_id: String,
    },
}

/// Every step to settle `room`, in order. Deterministic: the same ids on every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementPlan {
    pub room: String,
    pub host: String,
    pub host_shard: ShardId,
    pub steps: Vec<SettlementStep>,
}

pub fn plan_settlement(map: ShardMap, room: &str, host: &str) -> SettlementPlan {
    let host_shard = map.shard_of(host);
    let mut steps = Vec::with_capacity(usize::from(map.shards()) * 2);
    for shard in 0..map.shards() {
        steps.push(SettlementStep::Clear {
            shard,
            clear_id: format!("settle-clear:{room}:{shard}"),
            credit_id: format!("settle-credit:{room}:{shard}"),
        });
    }
    for shard in 0..map.shards() {
        steps.push(SettlementStep::Credit {
            source: shard,
            host_shard,
            credit_id: format!("settle-credit:{room}:{shard}"),
        });
    }
    SettlementPlan {
        room: room.to_owned(),
        host: host.to_owned(),
        host_shard,
        steps,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TransferRecord {
    fingerprint: String,
    /// The balance returned to the caller the first time (replayed on retries).
    balance_after: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RoomRecord {
    host: String,
    status: RoomStatus,
    gifted: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shard {
    balances: BTreeMap<Account, i128>,
    /// (paying user, id) → record; settlement steps use the owner "" (the system).
    transfers: BTreeMap<(String, String), TransferRecord>,
    rooms: BTreeMap<String, RoomRecord>,
    /// credit_id → amount, written by `Clear`, consumed by `Credit`.
    outbox: BTreeMap<String, u64>,
    /// credit ids applied in this (host) shard.
    credits_applied: BTreeMap<String, u64>,
}

impl Shard {
    fn balance(&self, account: &Account) -> i128 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    fn add(&mut self, account: Account, delta: i128) {
        *self.balances.entry(account).or_default() += delta;
    }
}

/// A room's totals across shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: String,
    pub host: String,
    pub status: RoomStatus,
    pub gifted: u64,
    pub settled: u64,
}

/// The invariants, each with its figures (all zero: all hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub balances_sum: i128,
    pub negative_users: u64,
    pub settled_rooms_nonzero: u64,
    pub host_mismatches: u64,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.balances_sum == 0
            && self.negative_users == 0
            && self.settled_rooms_nonzero == 0
            && self.host_mismatches == 0
    }
}

/// The reference model of the sharded ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLedger {
    map: ShardMap,
    shards: Vec<Shard>,
}

impl MemoryLedger {
    pub fn new(map: ShardMap) -> MemoryLedger {
        MemoryLedger {
            map,
            shards: vec![Shard::default(); usize::from(map.shards())],
        }
    }

    pub fn map(&self) -> ShardMap {
        self.map
    }

    pub fn balance(&self, user: &str) -> u64 {
        let shard = &self.shards[usize::from(self.map.shard_of(user))];
        u64::try_from(shard.balance(&Account::User(user.to_owned())))
            .expect("user balances are never negative")
    }

    pub fn deposit(&mut self, deposit: &Deposit) -> Result<u64, LedgerError> {
        deposit.validate()?;
        let shard = &mut self.shards[usize::from(self.map.shard_of(&deposit.user))];
        let key = (deposit.user.clone(), deposit.id.clone());
        if let Some(record) = shard.transfers.get(&key) {
            return replay(record, &deposit.fingerprint());
        }
        let balance = u64::try_from(shard.balance(&Account::User(deposit.user.clone())))
            .expect("user balances are never negative");
        check_balance_after(balance, deposit.amount)?;
        let minted = u64::try_from(-shard.balance(&Account::Treasury))
            .expect("the treasury only mints: never above 0");
        check_minted_after(minted, deposit.amount)?;
        let amount = i128::from(deposit.amount);
        shard.add(Account::Treasury, -amount);
        shard.add(Account::User(deposit.user.clone()), amount);
        let balance_after = u64::try_from(shard.balance(&Account::User(deposit.user.clone())))
            .expect("non-negative");
        shard.transfers.insert(
            key,
            TransferRecord {
                fingerprint: deposit.fingerprint(),
                balance_after,
            },
        );
        Ok(balance_after)
    }

    /// Opens the room: every step of [`plan_opening`]. Opening again with the same host
    /// is a no-op, or finishes an opening a crash interrupted.
    pub fn open_room(&mut self, room: &str, host: &str) -> Result<(), LedgerError> {
        validate_room(room, host)?;
        let plan = plan_opening(self.map, room, host);
        for step in &plan.steps {
            self.apply_opening_step(&plan, step)?;
        }
        Ok(())
    }

    /// Applies one opening step; applying it again changes nothing.
    pub fn apply_opening_step(
        &mut self,
        plan: &OpeningPlan,
        step: &OpeningStep,
    ) -> Result<(), LedgerError> {
        match step {
            OpeningStep::Prepare { shard } => {
                let rooms = &mut self.shards[usize::from(*shard)].rooms;
                match rooms.get(&plan.room) {
                    Some(existing) if existing.host != plan.host => {
                        Err(LedgerError::RoomHostConflict)
                    }
                    Some(_) => Ok(()),
                    None => {
                        rooms.insert(
                            plan.room.clone(),
                            RoomRecord {
                                host: plan.host.clone(),
                                status: RoomStatus::Opening,
                                gifted: 0,
                            },
                        );
                        Ok(())
                    }
                }
            }
            OpeningStep::Activate { shard } => {
                let record = self.shards[usize::from(*shard)]
                    .rooms
                    .get_mut(&plan.room)
                    .expect("every shard is prepared before any is activated");
                if record.status == RoomStatus::Opening {
                    record.status = RoomStatus::Open;
                }
                Ok(())
            }
        }
    }

    fn coordinator_status(&self, room: &str) -> Option<RoomStatus> {
        self.shards[usize::from(COORDINATOR_SHARD)]
            .rooms
            .get(room)
            .map(|r| r.status)
    }

    /// One local transaction in the sender's shard. Returns the sender's new balance
    /// (the original one when the same request is retried).
    pub fn gift(&mut self, gift: &Gift) -> Result<GiftReceipt, LedgerError> {
        gift.validate()?;
        let shard_id = self.map.shard_of(&gift.from);
        let coordinator = self.coordinator_status(&gift.room);
        let shard = &mut self.shards[usize::from(shard_id)];
        let key = (gift.from.clone(), gift.id.clone());
        if let Some(record) = shard.transfers.get(&key) {
            return replay(record, &gift.fingerprint()).map(GiftReceipt::replayed);
        }
        // A room this shard does not know (never opened, or its opening has not reached
        // this shard) is not open for gifts.
        let room = shard
            .rooms
            .get_mut(&gift.room)
            .ok_or(LedgerError::RoomNotOpen)?;
        let activates = room.status == RoomStatus::Opening && may_activate(shard_id, coordinator);
        if room.status != RoomStatus::Open && !activates {
            return Err(LedgerError::RoomNotOpen);
        }
        let from = Account::User(gift.from.clone());
        let balance = u64::try_from(shard.balance(&from)).expect("non-negative");
        if balance < gift.amount {
            return Err(LedgerError::InsufficientFunds {
                balance,
                needed: gift.amount,
            });
        }
        let room = shard.rooms.get_mut(&gift.room).expect("checked");
        // Activation is kept only with the gift (the engine activates in its transaction).
        room.status = RoomStatus::Open;
        room.gifted += gift.amount;
        let amount = i128::from(gift.amount);
        shard.add(from, -amount);
        shard.add(Account::Room(gift.room.clone()), amount);
        let balance_after = balance - gift.amount;
        shard.transfers.insert(
            key,
            TransferRecord {
                fingerprint: gift.fingerprint(),
                balance_after,
            },
        );
        Ok(GiftReceipt {
            balance: balance_after,
            replayed: false,
        })
    }

    pub fn room(&self, room: &str) -> Option<RoomSummary> {
        let first = self.shards[usize::from(COORDINATOR_SHARD)]
            .rooms
            .get(room)?;
        let statuses: Vec<Option<RoomStatus>> = self
            .shards
            .iter()
            .map(|shard| shard.rooms.get(room).map(|r| r.status))
            .collect();
        let gifted = self
            .shards
            .iter()
            .filter_map(|shard| shard.rooms.get(room))
            .map(|r| r.gifted)
            .sum();
        let host_shard = &self.shards[usize::from(self.map.shard_of(&first.host))];
        let settled = (0..self.map.shards())
            .filter_map(|s| {
                host_shard
                    .credits_applied
                    .get(&format!("settle-credit:{room}:{s}"))
            })
            .sum();
        Some(RoomSummary {
            room: room.to_owned(),
            host: first.host.clone(),
            status: room_status_of(&statuses),
            gifted,
            settled,
        })
    }

    /// Applies one settlement step; applying it again changes nothing.
    pub fn apply_step(&mut self, plan: &SettlementPlan, step: &SettlementStep) {
        match step {
            SettlementStep::Clear {
                shard,
                clear_id,
                credit_id,
            } => {
                let shard = &mut self.shards[usize::from(*shard)];
                let key = (String::new(), clear_id.clone());
                if shard.transfers.contains_key(&key) {
                    return;
                }
                let room_account = Account::Room(plan.room.clone());
                let amount = shard.balance(&room_account);
                assert!(amount >= 0, "room accounts are never negative");
                shard.add(room_account, -amount);
                shard.add(Account::Clearing, amount);
                let record = shard.rooms.get_mut(&plan.room).expect("open room");
                record.status = RoomStatus::Settling;
                shard.outbox.insert(
                    credit_id.clone(),
                    u64::try_from(amount).expect("non-negative"),
                );
                shard.transfers.insert(
                    key,
                    TransferRecord {
                        fingerprint: "settle-clear".into(),
                        balance_after: 0,
                    },
                );
            }
            SettlementStep::Credit {
                source,
                host_shard,
                credit_id,
            } => {
                let amount = *self.shards[usize::from(*source)]
                    .outbox
                    .get(credit_id)
                    .expect("Clear runs before Credit");
                let host = &mut self.shards[usize::from(*host_shard)];
                if !host.credits_applied.contains_key(credit_id) {
                    host.credits_applied.insert(credit_id.clone(), amount);
                    host.add(Account::Clearing, -i128::from(amount));
                    host.add(Account::User(plan.host.clone()), i128::from(amount));
                }
                let source = &mut self.shards[usize::from(*source)];
                source.rooms.get_mut(&plan.room).expect("open room").status = RoomStatus::Settled;
            }
        }
    }

    /// Settles a room (all steps). Safe to call again after a partial run. A room whose
    /// opening a crash interrupted is opened first (the host is the coordinator's).
    pub fn settle(&mut self, room: &str) -> Result<RoomSummary, LedgerError> {
        let summary = self.room(room).ok_or(LedgerError::RoomUnknown)?;
        self.open_room(room, &summary.host)?;
        let plan = plan_settlement(self.map, room, &summary.host);
        for step in &plan.steps {
            self.apply_step(&plan, step);
        }
        Ok(self.room(room).expect("exists"))
    }

    pub fn audit(&self) -> Audit {
        let mut audit = Audit::default();
        for shard in &self.shards {
            for (account, balance) in &shard.balances {
                audit.balances_sum += balance;
                if matches!(account, Account::User(_)) && *balance < 0 {
                    audit.negative_users += 1;
                }
            }
        }
        let rooms: Vec<String> = self.shards[0].rooms.keys().cloned().collect();
        for room in rooms {
            let summary = self.room(&room).expect("listed");
            if summary.status == RoomStatus::Settled {
                let nonzero = self
                    .shards
                    .iter()
                    .any(|s| s.balance(&Account::Room(room.clone())) != 0);
                if nonzero {
                    audit.settled_rooms_nonzero += 1;
                }
                if summary.settled != summary.gifted {
                    audit.host_mismatches += 1;
                }
            }
        }
        audit
    }
}

fn replay(record: &TransferRecord, fingerprint: &str) -> Result<u64, LedgerError> {
    if record.fingerprint == fingerprint {
        Ok(record.balance_after)
    } else {
        Err(LedgerError::IdConflict)
    }
}

#[cfg(test)]
mod tests;
