//! Gifts: the catalog, a gift frame becomes a charge request for the host, the charge's
//! outcome is announced once (gift ids remembered per gifter), and the leaderboard.

use super::*;

/// What the room knows of one gifter: the leaderboard total, and the gift ids announced
/// last (so a retried or recovered gift is never announced twice).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Gifter {
    pub name: String,
    pub total: u64,
    pub recent_gift_ids: VecDeque<String>,
}

/// A gift waiting for its charge. Stored (`pending/<request>`) before the charge is
/// asked for, so a room restarted from storage asks again and still announces a gift
/// the settlement service charged before the crash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingGift {
    pub connection: ConnectionId,
    pub client_id: u64,
    pub name: String,
    pub charge: ChargeRequest,
    /// Restored from storage: a `replayed` answer means charged before the crash, and it
    /// was never announced.
    #[serde(skip)]
    pub recovered: bool,
    /// The same gift sent again while this charge was in flight (a reconnect's resend,
    /// an app's retry): answered with it, never charged a second time (a second charge
    /// racing the first could leave the gift paid and never announced). In memory only:
    /// after a restart the connections are gone.
    #[serde(skip)]
    pub joined: Vec<GiftWaiter>,
    /// A recovered gift answered `unavailable` is asked for again at this time
    /// (`Gifts::retry_later`); none is asked while it waits. In memory only: a restarted
    /// room asks at once.
    #[serde(skip)]
    pub retry_at_ms: Option<u64>,
    /// The waits so far (each doubles the next).
    #[serde(skip)]
    pub retries: u32,
    /// The first sender was told `unavailable` by a retry (once, not at every retry).
    #[serde(skip)]
    pub sender_told: bool,
}

/// What became of a gift sent again while its charge is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinOutcome {
    Joined,
    Full,
    NotPending,
}

/// A connection waiting for a pending gift's answer under its own client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GiftWaiter {
    pub connection: ConnectionId,
    pub client_id: u64,
}

/// The room's gifts: the catalog, the gifts waiting for their charge, and the gifters.
///
/// Invariants: at most `GIFTS_PENDING_MAX` pending, each under its own request number
/// (the host matches answers by it: numbers grow within an instance, and a restored room
/// numbers above every pending one); at most `GIFTERS_MAX` gifters, each remembering its
/// last `GIFT_IDS_REMEMBERED_PER_USER_MAX` announced gift ids.
#[derive(Debug)]
pub(crate) struct Gifts {
    /// sku → price in minor units (given by the host on every wake; not stored).
    catalog: BTreeMap<String, u64>,
    /// Stored as `pending/<request>`.
    pending: BTreeMap<u64, PendingGift>,
    next_request: u64,
    /// user → totals and recently announced gift ids, stored as `gifter/<user>`.
    gifters: BTreeMap<String, Gifter>,
    /// The top `LEADERBOARD_ENTRIES_MAX` gifters, ranked (`ranks_before`): kept as gifts
    /// come, so a gift costs the leaderboard a look at ten gifters, not a sort of all of
    /// them (up to `GIFTERS_MAX`, which one funded viewer's cheapest gifts made a room's
    /// work at the gift rate). Totals only grow, so a gifter enters it only by passing
    /// its last.
    top: Vec<String>,
    /// Gifts answered `unavailable` and not announced, oldest first (at most
    /// `GIFT_OUTCOMES_UNKNOWN_MAX`), stored as `unknown/<n>` so a restart keeps them.
    outcomes_unknown: VecDeque<OutcomeUnknown>,
    next_unknown: u64,
    /// What each gift announced since this object woke was (its sku and quantity), per
    /// gifter, as many as `Gifter::recent_gift_ids` keeps: a resend of an announced id is
    /// answered as that gift only when it is that gift. Not stored: after a restart the
    /// ledger answers resends (`replayed`, or `id_conflict` for another gift).
    announced_as: BTreeMap<String, VecDeque<(String, String, u32)>>,
}

/// A gift whose charge was answered `unavailable`: made with the answer lost, or not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OutcomeUnknown {
    /// Orders them (the storage key's number).
    #[serde(skip)]
    pub n: u64,
    pub user: String,
    pub gift_id: String,
    /// What its charge asked (absent from a record of an earlier build): a retry of the
    /// same gift is charged the same amount whatever the catalog says now, or the ledger
    /// refuses it as another gift under the same id (`id_conflict`) when the first was
    /// charged, and it is never announced.
    pub charged: Option<ChargedAs>,
}

/// A charge's gift, quantity and amount.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChargedAs {
    pub sku: String,
    pub qty: u32,
    pub amount: u64,
}

/// `OutcomeUnknown` as the build before `charged` stored it.
#[derive(serde::Deserialize)]
struct OutcomeUnknownWithoutCharge {
    user: String,
    gift_id: String,
}

impl OutcomeUnknown {
    /// A stored record, of this build or the one before.
    pub(crate) fn decode(n: u64, bytes: &[u8]) -> Option<OutcomeUnknown> {
        if let Ok(unknown) = postcard::from_bytes::<OutcomeUnknown>(bytes) {
            return Some(OutcomeUnknown { n, ..unknown });
        }
        let before: OutcomeUnknownWithoutCharge = postcard::from_bytes(bytes).ok()?;
        Some(OutcomeUnknown {
            n,
            user: before.user,
            gift_id: before.gift_id,
            charged: None,
        })
    }
}

impl Default for Gifts {
    fn default() -> Self {
        Gifts {
            catalog: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_request: 1,
            gifters: BTreeMap::new(),
            top: Vec::new(),
            outcomes_unknown: VecDeque::new(),
            next_unknown: 0,
            announced_as: BTreeMap::new(),
        }
    }
}

impl Gifts {
    /// Gifts read back from storage: every pending one is recovered (asked for again).
    pub(crate) fn restored(
        gifters: BTreeMap<String, Gifter>,
        pending: BTreeMap<u64, PendingGift>,
        unknown: BTreeMap<u64, OutcomeUnknown>,
    ) -> Gifts {
        let mut ranked: Vec<&String> = gifters.keys().collect();
        ranked.sort_by(|a, b| ranks_before(&gifters, a, b));
        ranked.truncate(LEADERBOARD_ENTRIES_MAX);
        let top = ranked.into_iter().cloned().collect();
        Gifts {
            catalog: BTreeMap::new(),
            next_request: pending.keys().max().map_or(1, |max| max + 1),
            pending,
            top,
            gifters,
            next_unknown: unknown.keys().max().map_or(0, |max| max + 1),
            outcomes_unknown: unknown.into_values().collect(),
            announced_as: BTreeMap::new(),
        }
    }

    pub(crate) fn set_catalog(&mut self, catalog: BTreeMap<String, u64>) -> Result<(), String> {
        if catalog.len() > GIFT_CATALOG_ENTRIES_MAX {
            return Err(format!(
                "a catalog has at most {GIFT_CATALOG_ENTRIES_MAX} entries"
            ));
        }
        let bad = |(sku, price): &(&String, &u64)| {
            sku.is_empty()
                || sku.len() > GIFT_SKU_BYTES_MAX
                // The ledger refuses them: every gift of it would be refused `invalid`.
                || sku.chars().any(char::is_control)
                || !(1..=GIFT_PRICE_MAX).contains(*price)
        };
        if let Some((sku, _)) = catalog.iter().find(bad) {
            return Err(format!(
                "catalog entry {sku:?} needs a name of 1..={GIFT_SKU_BYTES_MAX} bytes without control characters and a price of 1..={GIFT_PRICE_MAX}"
            ));
        }
        self.catalog = catalog;
        Ok(())
    }

    pub(crate) fn catalog(&self) -> &BTreeMap<String, u64> {
        &self.catalog
    }

    /// The amount a gift frame asks for, or why it is refused before any charge.
    pub(crate) fn price(
        &self,
        user: &str,
        gift_id: &str,
        sku: &str,
        qty: u32,
    ) -> Result<u64, Refusal> {
        if gift_id.is_empty() || qty == 0 || qty > GIFT_QTY_MAX {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("a gift needs an id and a quantity of 1..={GIFT_QTY_MAX}"),
            ));
        }
        let price = *self.catalog.get(sku).ok_or_else(|| {
            let message = if self.catalog.is_empty() {
                // Gifts are off, or the configured catalog was refused: for good, so
                // not `unavailable`, which asks for a retry.
                "no gifts are sold in this room".to_owned()
            } else {
                format!("no gift `{sku}` in the catalog")
            };
            Refusal::new(ErrorCode::NotFound, message)
        })?;
        if self.pending.len() >= GIFTS_PENDING_MAX {
            return Err(Refusal::retry_after(
                ErrorCode::RateLimited,
                "too many gifts in flight",
                1000,
            ));
        }
        // A scan of at most `GIFTS_PENDING_MAX`, for a frame the gift rate bounds.
        let mine = self.pending.values().filter(|p| p.charge.user == user);
        if mine.count() >= GIFTS_PENDING_PER_USER_MAX {
            return Err(Refusal::retry_after(
                ErrorCode::RateLimited,
                "too many of your gifts in flight",
                1000,
            ));
        }
        Ok(price * u64::from(qty))
    }

    /// A gift that passed `price` (and the user's rate) waits for its charge, under the
    /// next request number.
    pub(crate) fn open(
        &mut self,
        connection: ConnectionId,
        client_id: u64,
        identity: &Identity,
        charge: impl FnOnce(u64) -> ChargeRequest,
    ) -> &PendingGift {
        assert!(self.pending.len() < GIFTS_PENDING_MAX, "checked by price");
        let request = self.next_request;
        self.next_request += 1;
        let pending = PendingGift {
            connection,
            client_id,
            name: identity.name.clone(),
            charge: charge(request),
            recovered: false,
            joined: Vec::new(),
            retry_at_ms: None,
            retries: 0,
            sender_told: false,
        };
        self.pending.entry(request).or_insert(pending)
    }

    /// Joins a resend to the pending charge of the same gift (same user, id, sku and
    /// quantity): `true` if it waits for that charge's answer now. A resend past
    /// `GIFT_RESENDS_JOINED_MAX` is not joined (the caller refuses it: retry later).
    pub(crate) fn join(&mut self, charge: &ChargeRequest, waiter: GiftWaiter) -> JoinOutcome {
        let same = |p: &&mut PendingGift| {
            p.charge.user == charge.user
                && p.charge.gift_id == charge.gift_id
                && p.charge.sku == charge.sku
                && p.charge.qty == charge.qty
        };
        match self.pending.values_mut().find(same) {
            None => JoinOutcome::NotPending,
            Some(pending) if pending.joined.len() >= GIFT_RESENDS_JOINED_MAX => JoinOutcome::Full,
            Some(pending) => {
                pending.joined.push(waiter);
                JoinOutcome::Joined
            }
        }
    }

    /// A recovered gift's charge answered `unavailable`: it stays pending (its record
    /// too) and is asked for again after a wait that doubles, from
    /// `GIFT_RECOVERED_RETRY_MS_MIN` to `GIFT_RECOVERED_RETRY_MS_MAX`. Returns the
    /// gifter, the resends that waited for this answer and the wait, or `None` for a gift a
    /// gifter is still there to retry (not recovered).
    pub(crate) fn retry_later(
        &mut self,
        request: u64,
        now_ms: u64,
    ) -> Option<(String, Vec<GiftWaiter>, u64)> {
        let pending = self
            .pending
            .get_mut(&request)
            .expect("every charge result answers a pending request");
        if !pending.recovered || pending.retries >= GIFT_RECOVERED_RETRIES_MAX {
            return None; // a gifter's to retry, or asked for long enough (see the limit)
        }
        let wait_ms = GIFT_RECOVERED_RETRY_MS_MIN
            .saturating_mul(1 << pending.retries.min(16))
            .min(GIFT_RECOVERED_RETRY_MS_MAX);
        pending.retries = pending.retries.saturating_add(1);
        pending.retry_at_ms = Some(now_ms + wait_ms);
        let mut waiters = std::mem::take(&mut pending.joined);
        if !std::mem::replace(&mut pending.sender_told, true) {
            // Its sender, still here when the host gave its charge up unanswered (after a
            // restart the connection is gone, or another user's: filtered by the caller).
            waiters.push(GiftWaiter {
                connection: pending.connection,
                client_id: pending.client_id,
            });
        }
        Some((pending.charge.user.clone(), waiters, wait_ms))
    }

    /// When the next recovered gift waiting to be asked for again is due.
    pub(crate) fn next_retry_ms(&self) -> Option<u64> {
        self.pending.values().filter_map(|p| p.retry_at_ms).min()
    }

    /// The charges of the recovered gifts due at `now_ms` (all of them with `None`: an
    /// end settles the room after them), no longer waiting.
    pub(crate) fn take_retries_due(&mut self, now_ms: Option<u64>) -> Vec<ChargeRequest> {
        self.pending
            .values_mut()
            .filter(|p| {
                p.retry_at_ms
                    .is_some_and(|at| now_ms.is_none_or(|now| at <= now))
            })
            .map(|p| {
                p.retry_at_ms = None;
                p.charge.clone()
            })
            .collect()
    }

    /// The gift a charge result answers.
    pub(crate) fn settle(&mut self, request: u64) -> PendingGift {
        self.pending
            .remove(&request)
            .expect("every charge result answers a pending request")
    }

    /// Remembers that this gift's charge was answered `unavailable`: its outcome is
    /// unknown to the room (made, with the answer lost, or not). Returns the writes.
    fn outcome_unknown(&mut self, charge: &ChargeRequest) -> Vec<StorageOp> {
        let (user, gift_id) = (charge.user.as_str(), charge.gift_id.as_str());
        if self.unknown_outcome_at(user, gift_id).is_some() {
            return Vec::new(); // once: one announcement clears it
        }
        let mut writes = Vec::new();
        // A user past their share forgets their own oldest first: one user's gifts during
        // an outage never push out another's (whose charged retry would go unannounced).
        let theirs = self.outcomes_unknown.iter().filter(|o| o.user == user);
        let forget = if theirs.count() >= GIFT_OUTCOMES_UNKNOWN_PER_USER_MAX {
            self.outcomes_unknown.iter().position(|o| o.user == user)
        } else if self.outcomes_unknown.len() >= GIFT_OUTCOMES_UNKNOWN_MAX {
            Some(0)
        } else {
            None
        };
        if let Some(at) = forget {
            let oldest = self.outcomes_unknown.remove(at).expect("found");
            writes.push(StorageOp::delete_outcome_unknown(oldest.n));
        }
        let unknown = OutcomeUnknown {
            n: self.next_unknown,
            user: user.to_owned(),
            gift_id: gift_id.to_owned(),
            charged: Some(ChargedAs {
                sku: charge.sku.clone(),
                qty: charge.qty,
                amount: charge.amount,
            }),
        };
        self.next_unknown += 1;
        writes.push(StorageOp::put_outcome_unknown(&unknown));
        self.outcomes_unknown.push_back(unknown);
        writes
    }

    /// Whether this gift's charge was answered `unavailable` before (and forgets it:
    /// the write that deletes it is returned).
    fn outcome_was_unknown(&mut self, user: &str, gift_id: &str) -> Option<StorageOp> {
        let at = self.unknown_outcome_at(user, gift_id)?;
        let known = self.outcomes_unknown.remove(at).expect("found");
        Some(StorageOp::delete_outcome_unknown(known.n))
    }

    /// Marks a pending charge as possibly made (see `Room::charge_unanswered`).
    fn mark_recovered(&mut self, request: u64) {
        if let Some(pending) = self.pending.get_mut(&request) {
            pending.recovered = true;
        }
    }

    /// The amount a gift answered `unavailable` was charged, when a retry asks the same
    /// gift and quantity (its price may have changed since).
    fn amount_charged_before(&self, user: &str, gift_id: &str, sku: &str, qty: u32) -> Option<u64> {
        let at = self.unknown_outcome_at(user, gift_id)?;
        self.outcomes_unknown[at]
            .charged
            .as_ref()
            .filter(|charged| charged.sku == sku && charged.qty == qty)
            .map(|charged| charged.amount)
    }

    /// Whether this gift's charge was answered `unavailable` (may have been made).
    pub(crate) fn outcome_is_unknown(&self, user: &str, gift_id: &str) -> bool {
        self.unknown_outcome_at(user, gift_id).is_some()
    }

    /// Where this gift's unknown outcome is kept (at most one per gift).
    fn unknown_outcome_at(&self, user: &str, gift_id: &str) -> Option<usize> {
        self.outcomes_unknown
            .iter()
            .position(|o| o.user == user && o.gift_id == gift_id)
    }

    pub(crate) fn pending(&self) -> impl Iterator<Item = &PendingGift> + '_ {
        self.pending.values()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The sku and quantity of an announced gift, when this object announced it (see
    /// `announced_as`).
    pub(crate) fn announced_as(&self, user: &str, gift_id: &str) -> Option<(&str, u32)> {
        self.announced_as
            .get(user)?
            .iter()
            .find(|(id, _, _)| id == gift_id)
            .map(|(_, sku, qty)| (sku.as_str(), *qty))
    }

    pub(crate) fn announced(&self, user: &str, gift_id: &str) -> bool {
        self.gifters
            .get(user)
            .is_some_and(|g| g.recent_gift_ids.iter().any(|id| id == gift_id))
    }

    /// Whether this opening surely never announced this gift: it would remember it
    /// (every gifter ranked, the gifter's ids all remembered) and does not.
    pub(crate) fn surely_unannounced(&self, user: &str, gift_id: &str) -> bool {
        let remembers_all = match self.gifters.get(user) {
            Some(gifter) => gifter.recent_gift_ids.len() < GIFT_IDS_REMEMBERED_PER_USER_MAX,
            None => self.gifters.len() < GIFTERS_MAX,
        };
        remembers_all && !self.announced(user, gift_id)
    }

    pub(crate) fn totals(&self) -> impl Iterator<Item = (&str, u64)> {
        self.gifters
            .iter()
            .map(|(user, g)| (user.as_str(), g.total))
    }

    /// Adds an announced gift to its gifter's total; the gifter to store, or None past
    /// `GIFTERS_MAX` (later gifters are announced but not ranked).
    pub(crate) fn rank(
        &mut self,
        user: &str,
        name: &str,
        charge: &ChargeRequest,
    ) -> Option<&Gifter> {
        let ChargeRequest {
            gift_id,
            sku,
            qty,
            amount,
            ..
        } = charge;
        let (qty, amount) = (*qty, *amount);
        if !self.gifters.contains_key(user) && self.gifters.len() >= GIFTERS_MAX {
            return None;
        }
        let gifter = self
            .gifters
            .entry(user.to_owned())
            .or_insert_with(|| Gifter {
                name: name.to_owned(),
                total: 0,
                recent_gift_ids: VecDeque::new(),
            });
        gifter.total += amount;
        let what = self.announced_as.entry(user.to_owned()).or_default();
        what.push_back((gift_id.to_owned(), sku.to_owned(), qty));
        if what.len() > GIFT_IDS_REMEMBERED_PER_USER_MAX {
            what.pop_front();
        }
        gifter.recent_gift_ids.push_back(gift_id.to_owned());
        while gifter.recent_gift_ids.len() > GIFT_IDS_REMEMBERED_PER_USER_MAX {
            gifter.recent_gift_ids.pop_front();
        }
        self.rerank(user);
        self.gifters.get(user)
    }

    /// `user`'s total grew: their place in `top`, if they have one now.
    fn rerank(&mut self, user: &str) {
        if !self.top.iter().any(|u| u == user) {
            let enters = self.top.len() < LEADERBOARD_ENTRIES_MAX
                || self.top.last().is_some_and(|last| {
                    ranks_before(&self.gifters, user, last) == std::cmp::Ordering::Less
                });
            if !enters {
                return;
            }
            self.top.push(user.to_owned());
        }
        let gifters = &self.gifters;
        self.top.sort_by(|a, b| ranks_before(gifters, a, b));
        self.top.truncate(LEADERBOARD_ENTRIES_MAX);
    }

    /// The `leaderboard` part: the top `LEADERBOARD_ENTRIES_MAX` gifters by total.
    pub(crate) fn leaderboard_json(&self) -> String {
        let top: Vec<serde_json::Value> = self
            .top
            .iter()
            .map(|user| {
                let g = &self.gifters[user];
                serde_json::json!({ "user": user, "name": g.name, "total": g.total })
            })
            .collect();
        serde_json::Value::Array(top).to_string()
    }

    #[cfg(test)]
    pub(crate) fn gifters_count(&self) -> usize {
        self.gifters.len()
    }

    /// A gifter as a restore would read it: `top` ranked again in full when the total
    /// went down (which gifts never do), else as a gift would.
    #[cfg(test)]
    pub(crate) fn insert_gifter(&mut self, user: String, gifter: Gifter) {
        let lowered = self
            .gifters
            .get(&user)
            .is_some_and(|g| gifter.total < g.total);
        self.gifters.insert(user.clone(), gifter);
        if !lowered {
            self.rerank(&user);
            return;
        }
        let gifters = std::mem::take(&mut self.gifters);
        let restored = Gifts::restored(gifters, BTreeMap::new(), BTreeMap::new());
        self.top = restored.top;
        self.gifters = restored.gifters;
    }
}

/// The leaderboard's order: the larger total first, then the user id.
fn ranks_before(gifters: &BTreeMap<String, Gifter>, a: &str, b: &str) -> std::cmp::Ordering {
    let total = |user: &str| gifters.get(user).map_or(0, |g| g.total);
    total(b).cmp(&total(a)).then_with(|| a.cmp(b))
}

/// The catalog of a deployment that configures none (`OVATION_GIFT_CATALOG`).
pub fn default_gift_catalog() -> BTreeMap<String, u64> {
    [
        ("rose".to_owned(), 1),
        ("heart".to_owned(), 5),
        ("rocket".to_owned(), 100),
    ]
    .into()
}

impl Room {
    /// Sets the gift catalog (sku → price in minor units). The host gives it on every
    /// wake (an empty one when gifts are off); it is published in the `room` part
    /// (`gifts`), where clients read the prices, and the part changes only when the
    /// catalog does. A catalog refused sells nothing, and the part says so: a woken room
    /// otherwise kept showing the prices of its last good catalog while refusing them.
    pub fn set_gift_catalog(&mut self, catalog: BTreeMap<String, u64>) -> Result<(), String> {
        let set = self.gifts.set_catalog(catalog);
        if set.is_err() {
            self.gifts
                .set_catalog(BTreeMap::new())
                .expect("empty is valid");
        }
        self.update_room_part();
        set
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_gift(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        client_id: u64,
        gift_id: String,
        sku: String,
        qty: u32,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if self.status == RoomStatus::Ended {
            return Err(Refusal::new(ErrorCode::RoomEnded, "the room has ended"));
        }
        let resend = ChargeRequest {
            request: 0,
            gift_id,
            user: identity.user.clone(),
            sku,
            qty,
            amount: 0,
        };
        let waiter = GiftWaiter {
            connection,
            client_id,
        };
        match self.gifts.join(&resend, waiter) {
            JoinOutcome::Joined => return Ok(()),
            JoinOutcome::Full => {
                return Err(Refusal::retry_after(
                    ErrorCode::Unavailable,
                    "this gift's charge is in progress: retry with the same gift id",
                    GIFT_IN_PROGRESS_RETRY_AFTER_MS,
                ))
            }
            JoinOutcome::NotPending => {}
        }
        match self.gifts.announced_as(&identity.user, &resend.gift_id) {
            // A resend of a gift announced (its ack lost with its socket): answered as
            // that gift, before the price and the rates, which would refuse it as if it
            // were not applied (a resumed client resends all its gifts at once; a shard
            // sends every gift resend here, the gift id being the room's to check).
            Some((sku, qty)) if sku == resend.sku && qty == resend.qty => {
                let ack = Event::Ack {
                    client_id,
                    seq: None,
                };
                self.enqueue(connection, ack, now_ms);
                return Ok(());
            }
            // Another gift under an announced id: the ledger's `id_conflict`.
            Some(_) => {
                return Err(Refusal::new(
                    ErrorCode::Invalid,
                    "this gift id was used for another gift",
                ))
            }
            // Not announced since this object woke: charged (the ledger answers a resend).
            None => {}
        }
        let ChargeRequest {
            gift_id, sku, qty, ..
        } = resend;
        let priced = self.gifts.price(&identity.user, &gift_id, &sku, qty);
        // A gift whose charge may have been made is charged again as it was: the ledger
        // answers a repeat only to the same gift, the same amount.
        let charged_before = self
            .gifts
            .amount_charged_before(&identity.user, &gift_id, &sku, qty);
        let amount = priced
            .map(|price| charged_before.unwrap_or(price))
            .map_err(|refusal| {
                // A gift whose charge may have been made (answered `unavailable`) is not
                // refused for good because the room sells nothing now (gifts switched off,
                // or the catalog changed): its gifter retries until it is sold again, and
                // the charge's `replayed` answer announces it.
                let unknown = self.gifts.outcome_is_unknown(&identity.user, &gift_id);
                if refusal.code == ErrorCode::NotFound && unknown {
                    Refusal::retry_after(
                        ErrorCode::Unavailable,
                        "this gift may have been charged and is not sold here now: retry with the \
                     same gift id later",
                        GIFT_UNKNOWN_UNSOLD_RETRY_AFTER_MS,
                    )
                } else {
                    refusal
                }
            })?;
        self.buckets(&identity.user, now_ms)
            .gifts
            .take(1, now_ms)
            .map_err(Refusal::slow_down)?;
        let pending = self
            .gifts
            .open(connection, client_id, identity, |request| ChargeRequest {
                request,
                gift_id,
                user: identity.user.clone(),
                sku,
                qty,
                amount,
            });
        // Stored before the charge is asked for (see `PendingGift`).
        let store = Output::Store(StorageOp::put_pending_gift(pending));
        let charge = Output::Charge(pending.charge.clone());
        self.outputs.push_back(store);
        self.outputs.push_back(charge);
        Ok(())
    }

    /// A charge the host asked for and gave up without its answer (it asks again): the
    /// charge may have been made, so a `replayed` answer to it announces the gift, as for
    /// a charge recovered after a crash. Nothing for a request no longer pending.
    pub fn charge_unanswered(&mut self, request: u64) {
        self.gifts.mark_recovered(request);
    }

    /// The settlement service's answer to [`Output::Charge`].
    pub fn charge_result(&mut self, request: u64, outcome: ChargeOutcome, now_ms: u64) {
        if let ChargeOutcome::Refused {
            code: ErrorCode::Unavailable,
            message,
        } = &outcome
        {
            // A recovered gift is asked for again by the room (`Gifts::retry_later`);
            // the resends that joined it retry with the same id, and join it again.
            if let Some((user, waiters, wait_ms)) = self.gifts.retry_later(request, now_ms) {
                let wait_ms = u32::try_from(wait_ms).unwrap_or(u32::MAX);
                let waiters = waiters.into_iter().filter(|w| {
                    let conn = self.connections.get(&w.connection);
                    conn.is_some_and(|c| c.identity.user == user)
                });
                let waiters: Vec<GiftWaiter> = waiters.collect();
                for waiter in waiters {
                    let refusal = Refusal::retry_after(ErrorCode::Unavailable, message, wait_ms);
                    self.refuse(waiter.connection, Some(waiter.client_id), refusal, now_ms);
                }
                return;
            }
        }
        let pending = self.gifts.settle(request);
        self.outputs
            .push_back(Output::Store(StorageOp::delete_pending_gift(request)));
        // The gifter's connections (the first sender's and any resend joined to it) that
        // are still theirs: a restarted room numbers the connections its shards relay from
        // the start again, so an id may be another viewer's now.
        let waiters: Vec<GiftWaiter> = std::iter::once(GiftWaiter {
            connection: pending.connection,
            client_id: pending.client_id,
        })
        .chain(pending.joined.iter().cloned())
        .filter(|w| {
            self.connections
                .get(&w.connection)
                .is_some_and(|c| c.identity.user == pending.charge.user)
        })
        .collect();
        match outcome {
            ChargeOutcome::Charged { balance, replayed } => {
                let mut seq = None;
                // A replayed answer is a charge made before. It is announced only when
                // this room never learnt that charge's outcome: a request recovered after
                // a crash, or a retry of an id it had answered `unavailable` (the answer
                // lost on the way). Any other replay is a resend of a gift the room
                // announced (its id maybe no longer remembered): announcing it would rank
                // the gifter again for nothing.
                let forgotten = self
                    .gifts
                    .outcome_was_unknown(&pending.charge.user, &pending.charge.gift_id);
                let unknown_before = pending.recovered || forgotten.is_some();
                self.outputs.extend(forgotten.map(Output::Store));
                // A replay of a gift this opening surely never announced is one charged
                // with its first answer lost where the room did not see it lost (the
                // service's batch commit failed after it landed, and its retry alone
                // found the gift made): announced, or its gifter paid for nothing shown.
                let never_shown = replayed
                    && self
                        .gifts
                        .surely_unannounced(&pending.charge.user, &pending.charge.gift_id);
                let fresh = !replayed || unknown_before || never_shown;
                // Recorded after the end too: a charge answered then (in flight at the
                // end, or started by the end's settlement wait) is paid to the host, and
                // the ended room's actions and leaderboard must say so (its broadcast
                // reaches no one).
                if fresh
                    && !self
                        .gifts
                        .announced(&pending.charge.user, &pending.charge.gift_id)
                {
                    let body = ActionBody::Gift {
                        sku: pending.charge.sku.clone(),
                        qty: pending.charge.qty,
                        amount: pending.charge.amount,
                    };
                    seq = Some(self.push_action(
                        &pending.charge.user,
                        &pending.name,
                        body,
                        None,
                        now_ms,
                    ));
                    self.add_to_leaderboard(&pending.name, &pending.charge, now_ms);
                    // The meta that counts the gift's number goes in this pump's write
                    // with its action, gifter and pending delete: a crash before the next
                    // flush otherwise dropped the action at restore (numbered above the
                    // stored last), its charge made and its pending record gone.
                    self.flush_meta();
                }
                for waiter in waiters {
                    let ack = Event::Ack {
                        client_id: waiter.client_id,
                        seq,
                    };
                    self.enqueue(waiter.connection, ack, now_ms);
                    // A replayed answer's balance is the one after the first charge:
                    // the gifter's later gifts may have lowered it since.
                    if !replayed {
                        self.enqueue(waiter.connection, Event::Balance { balance }, now_ms);
                    }
                }
            }
            ChargeOutcome::Refused { code, message } => {
                if code == ErrorCode::Unavailable
                    && !self
                        .gifts
                        .announced(&pending.charge.user, &pending.charge.gift_id)
                {
                    let writes = self.gifts.outcome_unknown(&pending.charge);
                    self.outputs.extend(writes.into_iter().map(Output::Store));
                }
                for waiter in waiters {
                    self.refuse(
                        waiter.connection,
                        Some(waiter.client_id),
                        Refusal::new(code, message.clone()),
                        now_ms,
                    );
                }
            }
        }
    }

    /// Total gifted per user (what the `leaderboard` part ranks).
    pub fn gift_totals(&self) -> impl Iterator<Item = (&str, u64)> {
        self.gifts.totals()
    }

    /// Gifts waiting for their charge.
    pub fn gifts_pending(&self) -> usize {
        self.gifts.pending_count()
    }

    /// Asks again for the charges of recovered gifts that are due (all of them with
    /// `None`, before an end settles the room).
    pub(crate) fn retry_recovered_charges(&mut self, now_ms: Option<u64>) {
        let due = self.gifts.take_retries_due(now_ms);
        self.outputs.extend(due.into_iter().map(Output::Charge));
    }

    pub(crate) fn add_to_leaderboard(&mut self, name: &str, charge: &ChargeRequest, now_ms: u64) {
        let user = charge.user.as_str();
        let Some(gifter) = self.gifts.rank(user, name, charge) else {
            return; // bounded: later gifters are announced but not ranked
        };
        let record = StorageOp::put_gifter(user, gifter);
        self.outputs.push_back(Output::Store(record));
        let value = self.gifts.leaderboard_json();
        // A gifter outside the top ten changes nothing shown: no new version for every
        // viewer.
        if self
            .parts
            .get("leaderboard")
            .is_none_or(|part| part.value != value)
        {
            self.put_part("leaderboard".into(), value, now_ms);
        }
    }
}
