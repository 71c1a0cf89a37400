//! A big room's link to its shards: naming and placing them, one batch in flight per shard,
//! which shard a viewer belongs to.

use super::*;

impl RoomObject {
    /// The room object's name (`tenant/room`), which its shards are named after. `None`
    /// while the tenant is unknown: a batch for `/room#i` would feed no shard of ours (the
    /// shards notice the missing batch by its number and ask for a snapshot).
    pub(crate) fn object_name(&self) -> Option<(String, String)> {
        let memory = self.memory.borrow();
        if memory.tenant.is_empty() {
            return None;
        }
        let room = memory.room.as_ref()?;
        let room_id = room.info().room_id.clone();
        let region = ovation_proto::RoomId::parse(&room_id)
            .map(|id| id.region().as_str().to_owned())
            .unwrap_or_default();
        Some((format!("{}/{room_id}", memory.tenant), region))
    }

    /// Delivers queued batches to the shards: per shard one request at a time, in order;
    /// the shards in parallel.
    pub(crate) async fn send_to_shards(&self) {
        let idle: Vec<u16> = {
            let memory = self.memory.borrow();
            memory
                .shard_queues
                .waiting()
                .filter(|shard| !memory.shards_sending.contains(shard))
                .collect()
        };
        let drains = idle.into_iter().map(|shard| self.drain_shard_queue(shard));
        futures_util::future::join_all(drains).await;
    }

    pub(crate) async fn drain_shard_queue(&self, shard: u16) {
        self.memory.borrow_mut().shards_sending.insert(shard);
        // Named and reached once per drain, not once per batch.
        let target = self
            .object_name()
            .ok_or_else(|| Error::RustError("no room, or its tenant is not known yet".into()))
            .and_then(|(name, region)| {
                let stub = crate::contract::shard_stub(&self.env, &name, shard, &region)?;
                Ok((name, stub))
            });
        loop {
            let Some(frame) = self.memory.borrow_mut().shard_queues.pop(shard) else {
                break;
            };
            let sent = async {
                let (name, stub) = target
                    .as_ref()
                    .map_err(|e| Error::RustError(e.to_string()))?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_body(Some(Uint8Array::from(&frame[..]).into()));
                let headers = Headers::new();
                headers.set(crate::contract::ROOM_OBJECT_HEADER, name)?;
                headers.set(crate::contract::SHARD_INDEX_HEADER, &shard.to_string())?;
                init.with_headers(headers);
                let req = Request::new_with_init("https://do/down", &init)?;
                stub.fetch_with_request(req).await
            }
            .await;
            match sent {
                Ok(resp) if resp.status_code() == 204 => {}
                // The shard notices the missing batch by its number and asks for a
                // snapshot, so a failed delivery is not retried.
                other => log_json(json!({"level":"error","event":"shard_down_failed",
                    "shard": shard, "detail": format!("{:?}", other.map(|r| r.status_code()))})),
            }
            // Delivered or given up: the room may send this shard what it held, at a tick
            // the alarm runs when due (not after the rest of the queue).
            self.memory.borrow_mut().shard_batches_done([shard]);
            if let Err(e) = driver::arm_alarm(self).await {
                log_json(json!({"level":"error","event":"alarm_unarmed","detail": e.to_string()}));
            }
        }
        self.memory.borrow_mut().shards_sending.remove(&shard);
    }

    /// The shard a viewer's socket goes to, in a sharded room (staff stay on the room:
    /// they get the staff-only notices).
    pub(crate) fn shard_for(&self, identity: &IdentityHeader) -> Option<u16> {
        let mut memory = self.memory.borrow_mut();
        memory
            .room
            .as_mut()?
            .route_to_shard(identity.role, &identity.user)
    }

    /// The room's shard count for the router to remember: 0 when not sharded, and when
    /// the room ended (its joins are refused; a remembered route would only add a hop).
    pub(crate) fn shard_count(&self) -> u16 {
        let memory = self.memory.borrow();
        memory
            .room
            .as_ref()
            .filter(|room| room.status() == ovation_room::RoomStatus::Live)
            .map_or(0, |room| room.shards())
    }

    /// The room's epoch (its current opening; 0 without a room).
    pub(crate) fn epoch(&self) -> u64 {
        self.memory
            .borrow()
            .room
            .as_ref()
            .map_or(0, |room| room.epoch())
    }
}
