//! The room object's HTTP routes, called by the Worker with the verified identity:
//! upgrades, admin commands, the pull answers, parts, audit, replay windows.

use super::*;

impl RoomObject {
    pub(crate) fn state_json(&self) -> std::result::Result<PullState, ApiError> {
        let memory = self.memory.borrow();
        let room = memory
            .room
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
        Ok(PullState {
            room: room.info().room_id.clone(),
            status: room.status().as_str().into(),
            epoch: room.epoch(),
            version: room.total_version(),
            parts: room
                .part_versions()
                .map(|(name, version)| (name.to_owned(), version))
                .collect(),
            action_cursor: room.last_seq(),
            likes: room.likes_total(),
            online: room.online(),
        })
    }

    pub(crate) async fn route(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let internal = |e: Error| ApiError::internal(&e.to_string());
        self.ensure_loaded().await.map_err(internal)?;
        if req.method() == Method::Post && req.path() == "/shard-up" {
            // From the room's own shards (objects of this worker; not routable from outside),
            // named `tenant/room` (room ids hold no `/`): read only by a room that does
            // not know its tenant (a batch a second is the hot path).
            if self.memory.borrow().tenant.is_empty() {
                let name = req
                    .headers()
                    .get(crate::contract::ROOM_OBJECT_HEADER)
                    .ok()
                    .flatten();
                if let Some((tenant, _)) = name.as_deref().and_then(|n| n.rsplit_once('/')) {
                    self.learn_tenant(tenant).await.map_err(internal)?;
                }
            }
            let bytes = req.bytes().await.map_err(internal)?;
            let result = {
                let mut memory = self.memory.borrow_mut();
                let room = memory
                    .room
                    .as_mut()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                room.shard_up(&bytes, now_ms())
            };
            if let Err(e) = result {
                log_json(
                    json!({"level":"error","event":"shard_up_refused","detail": e.to_string()}),
                );
                return Err(ApiError::new(400, "bad_shard_batch", &e.to_string()));
            }
            return Ok(Response::empty().map_err(internal)?.with_status(204));
        }
        let identity: IdentityHeader = req
            .headers()
            .get(crate::contract::IDENTITY_HEADER)
            .ok()
            .flatten()
            .and_then(|h| serde_json::from_str(&h).ok())
            .ok_or_else(|| ApiError::internal("room object called without identity"))?;
        self.learn_tenant(&identity.tenant)
            .await
            .map_err(internal)?;
        // The path came with the request (workers-rs parsed it); the URL is parsed again
        // only for a route that reads its query, never for an upgrade.
        let path = req.path();
        let url = match path.as_str() {
            "/ws" => None,
            _ => Some(req.url().map_err(internal)?),
        };
        let query = |name: &str| {
            url.as_ref()?
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let viewer_read = matches!(path.as_str(), "/state" | "/events" | "/part" | "/replay");
        if req.method() == Method::Get && viewer_read {
            // A user the room banned reads nothing of it over HTTP either (its sockets are
            // refused 4403, and the pull transport must not let it in instead; what the
            // Worker serves from its cache never comes here: http-api.md says so), and one
            // token's many clients cannot keep the room busy answering reads.
            let refused = self.memory.borrow_mut().room.as_mut().and_then(|room| {
                room.admit_read(&identity.user, identity.role, now_ms())
                    .err()
            });
            if let Some(refused) = refused {
                return crate::http::read_refusal(refused);
            }
        }
        // A viewer of a big room goes to its shard.
        let upgrade = req.method() == Method::Get && path == "/ws";
        let shard = upgrade.then(|| self.shard_for(&identity)).flatten();
        let resp = match (req.method(), path.as_str()) {
            (Method::Get, "/ws") if shard.is_some() => {
                // The Worker connects the viewer to the shard itself: a socket handed
                // through this object would carry every frame through the room, the
                // one object sharding is there to unload.
                let index = shard.expect("checked");
                let (name, region) = self.object_name().ok_or_else(|| {
                    ApiError::internal("a sharded room object that does not know its tenant")
                })?;
                let mut resp = Response::empty().map_err(internal)?;
                let route = [
                    (crate::contract::ROOM_OBJECT_HEADER, name),
                    (crate::contract::SHARD_INDEX_HEADER, index.to_string()),
                    (crate::contract::REGION_HEADER, region),
                    (
                        crate::contract::SHARD_COUNT_HEADER,
                        self.shard_count().to_string(),
                    ),
                    (crate::contract::EPOCH_HEADER, self.epoch().to_string()),
                ];
                for (header, value) in route {
                    resp.headers_mut().set(header, &value).map_err(internal)?;
                }
                resp
            }
            (Method::Get, "/ws") => {
                let echo = crate::http::offered_protocols(&req).contains(&SUBPROTOCOL.to_owned());
                let hello = crate::contract::upgrade_hello(req.headers());
                let mut resp = self.accept(identity, hello).await.map_err(internal)?;
                if echo && resp.status_code() == 101 {
                    resp.headers_mut()
                        .set("sec-websocket-protocol", SUBPROTOCOL)
                        .map_err(internal)?;
                }
                resp
            }
            (Method::Post, "/create") => {
                // Bodies are read as bytes by serde_json: JavaScript's JSON.parse would
                // round whole numbers above 2^53 (then refused as a 500).
                let info: RoomInfo = crate::http::object_json_body(&mut req).await?;
                info.validate()
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
                self.create(info).await.map_err(internal)?
            }
            (Method::Post, "/end") => {
                // Ending again completes an end whose settlement or archive failed (both
                // idempotent), answered like the first.
                let live = self
                    .memory
                    .borrow()
                    .room
                    .as_ref()
                    .map(|room| room.status() == ovation_room::RoomStatus::Live)
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let mut body = if live {
                    let reply = self.admin(AdminCommand::End)?.to_json();
                    self.pump_and_charge().await.map_err(internal)?; // the last changes, then the recording ends
                    reply
                } else {
                    AdminReply::Ended.to_json()
                };
                let replay = Self::replay_window_json(&self.memory.borrow());
                if !replay.is_null() {
                    body["replay"] = replay;
                }
                let completed = self.finish_end().await;
                if !completed.settlement.is_null() {
                    body["settlement"] = completed.settlement;
                }
                body["archived"] = completed.archived.into();
                json(body, 200).map_err(internal)?
            }
            (Method::Get, "/state") => json(self.state_json()?, 200).map_err(internal)?,
            // The directory's check of an entry a create admitted (internal).
            (Method::Get, "/opening") => {
                let end_finished = self.end_finished();
                let memory = self.memory.borrow();
                let seen = ovation_room::OpeningSeen {
                    status: memory.room.as_ref().map(|room| room.status()),
                    end_finished,
                    creating: memory.creating,
                };
                json(seen, 200).map_err(internal)?
            }
            (Method::Get, "/replay") => {
                // The same parser as the router's, which refused a bad query already.
                let url = url.as_ref().expect("parsed for every path but /ws");
                let window = ovation_proto::ReplayQuery::from_pairs(url.query_pairs())?;
                self.replay_window(window, &identity.user).await?
            }
            (Method::Get, "/part") => {
                let name = query("name").unwrap_or_default();
                let version: u64 = query("v").and_then(|v| v.parse().ok()).unwrap_or(0);
                let epoch: Option<u64> = query("e").and_then(|e| e.parse().ok());
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                if epoch.is_some_and(|epoch| epoch != room.epoch()) {
                    return Err(ApiError::new(
                        404,
                        "part_version_not_found",
                        "that opening of the room is over (GET …/state for the current one)",
                    ));
                }
                match room.part_read(&name, version) {
                    PartRead::AtVersion(value) => {
                        let mut resp = Response::ok(value).map_err(internal)?;
                        let _ = resp.headers_mut().set("content-type", "application/json");
                        resp
                    }
                    // Named by its version and never cached: the URL names another.
                    PartRead::Newer { version, value } => {
                        let mut resp = Response::ok(value).map_err(internal)?;
                        let headers = resp.headers_mut();
                        let _ = headers.set("content-type", "application/json");
                        let _ = headers.set("cache-control", "no-store");
                        let _ = headers.set(PART_VERSION_HEADER, &version.to_string());
                        resp
                    }
                    PartRead::Missing => {
                        return Err(ApiError::new(
                            404,
                            "part_version_not_found",
                            "no such part at that version (GET …/state for current versions)",
                        ))
                    }
                }
            }
            (Method::Get, "/events") => {
                let mut memory = self.memory.borrow_mut();
                let room = memory
                    .room
                    .as_mut()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let since = match query("since") {
                    Some(s) => s.parse::<u64>().map_err(|_| {
                        ApiError::new(400, "invalid_since", "since must be a sequence number")
                    })?,
                    None => room.last_seq(),
                };
                let (actions, gap) = room.actions_since(since, now_ms());
                let cursor = room.pull_cursor(since, &actions, gap);
                let events = PullEvents {
                    events: actions.iter().map(PullAction::from).collect(),
                    gap,
                    cursor,
                    epoch: room.epoch(),
                    version: room.total_version(),
                    likes: room.likes_total(),
                    online: room.online(),
                    status: Some(room.status().as_str().into()),
                    server_time_ms: Some(now_ms()),
                    poll_interval_ms: PULL_INTERVAL_MS,
                };
                json(events, 200).map_err(internal)?
            }
            (Method::Get, "/audit") => {
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let entries: Vec<&ovation_room::AuditEntry> = room.audit_trail().collect();
                json(json!({ "entries": entries }), 200).map_err(internal)?
            }
            (Method::Get, "/stats") => {
                let memory = self.memory.borrow();
                let room = memory
                    .room
                    .as_ref()
                    .ok_or_else(|| ApiError::new(404, "room_not_found", "no such room"))?;
                let mut stats = serde_json::to_value(room.stats()).unwrap_or_default();
                // The runtime's own count of the sockets this object holds: a big room's
                // viewers are on their shards, never here.
                stats["sockets_held"] = json!(self.state.get_websockets().len());
                // The isolate's wasm linear memory (every room object of the isolate
                // shares it; it never shrinks): `bench soak` tells it from the rest of
                // workerd's resident memory.
                #[cfg(target_arch = "wasm32")]
                {
                    stats["wasm_memory_bytes"] =
                        json!(core::arch::wasm32::memory_size::<0>() as u64 * 65_536);
                }
                json(stats, 200).map_err(internal)?
            }
            (Method::Post, "/admin") => {
                let request: AdminRequest = crate::http::object_json_body(&mut req).await?;
                let command = match request {
                    AdminRequest::Broadcast { text } => AdminCommand::Broadcast {
                        from_user: identity.user,
                        from_name: identity.name,
                        text,
                    },
                    AdminRequest::Direct { user, payload } => AdminCommand::Direct {
                        from_user: identity.user,
                        to_user: user,
                        payload,
                    },
                    AdminRequest::SetPart { name, value } => AdminCommand::SetPart { name, value },
                    AdminRequest::SetShards { shards } => AdminCommand::SetShards { shards },
                    AdminRequest::Staff { action } => AdminCommand::Staff {
                        by: Identity {
                            user: identity.user,
                            name: identity.name,
                            role: identity.role,
                        },
                        command: action,
                    },
                };
                json(self.admin(command)?.to_json(), 200).map_err(internal)?
            }
            _ => return Err(ApiError::new(404, "route_not_found", "no such route")),
        };
        Ok(resp)
    }
}
