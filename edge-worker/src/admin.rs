//! The admin API's handlers (rooms, broadcasts, parts, staff commands): each checks the
//! admin or staff token, reads its body as bytes into typed JSON, and forwards one typed
//! command to the room object.

use super::*;

pub(crate) fn admin(req: &Request, env: &Env) -> std::result::Result<Verified, ApiError> {
    let identity = authenticate(req, env)?;
    identity.require_admin().map_err(auth_error)?;
    Ok(identity)
}

pub(crate) async fn admin_forward(
    req: Request,
    env: &Env,
    path: &str,
    body: Option<serde_json::Value>,
) -> std::result::Result<Response, ApiError> {
    Ok(admin_forward_naming(req, env, path, body).await?.0)
}

/// `admin_forward`, also naming the caller's tenant and the room it reached.
async fn admin_forward_naming(
    req: Request,
    env: &Env,
    path: &str,
    body: Option<serde_json::Value>,
) -> std::result::Result<(Response, String, RoomId), ApiError> {
    let room = room_param(&req)?;
    let identity = admin(&req, env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let stub = room_stub(env, &identity.tenant, &room)?;
    let method = if body.is_some() {
        Method::Post
    } else {
        Method::Get
    };
    let resp = call(&stub, method, &format!("/{path}"), &identity, body).await?;
    Ok((resp, identity.tenant, room))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    room: String,
    host: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    expected_audience: u64,
}

pub(crate) async fn create_room(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let identity = admin(&req, env)?;
    let body: CreateRoom = json_body(&mut req).await?;
    let room = RoomId::parse(&body.room)
        .map_err(|e| ApiError::new(400, "invalid_room_id", &e.to_string()))?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    if body.host.is_empty() || body.host.len() > USER_ID_BYTES_MAX {
        return Err(ApiError::new(400, "invalid_host", "host must be a user id"));
    }
    let info = ovation_room::RoomInfo {
        room_id: room.as_str().to_owned(),
        host_user: body.host.clone(),
        title: body.title.clone(),
        expected_audience: body.expected_audience,
    };
    info.validate()
        .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
    // The directory admits the room first, so a tenant never has more than
    // DIRECTORY_ROOMS_MAX live rooms, listed or not (429 `too_many_rooms`); one more
    // for each create that opened its room after a failed create of it gave the slot
    // to another room (the open room is listed rather than left out).
    let dir = directory_stub(env, &identity.tenant)?;
    // Names the entry this create admits: a failed create removes only that one, never
    // the entry a create that opened the room since has claimed (its `/remove` may land
    // after that create's claim).
    let admitted_by = crate::platform::random_u53();
    let entry = json!({ "room": room.as_str(), "title": body.title, "host": body.host,
                        "created_ms": now_ms(), "admitted_by": admitted_by });
    let mut admitted = call(&dir, Method::Post, "/add", &identity, Some(entry.clone())).await?;
    if admitted.status_code() != 200 {
        return Ok(admitted);
    }
    let listed_before = admitted
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["existed"] == true);
    let stub = room_stub(env, &identity.tenant, &room)?;
    let payload = serde_json::to_value(&info).map_err(|e| ApiError::internal(&e.to_string()))?;
    // A create of the room already under way (a client retrying at once) is waited for:
    // asked again until it is done, so this one answers as a create sent after it would
    // (409 `room_exists`, or it opens the room itself if that one failed), and the
    // directory entry ends as the room does. Past the wait, 503 `room_opening`.
    let wait_ms = 2 * u64::from(ovation_proto::limits::SETTLEMENT_CALL_TIMEOUT_MS) + 5_000;
    let deadline_ms = now_ms() + wait_ms;
    let mut waited = false;
    let created = loop {
        let created = call(
            &stub,
            Method::Post,
            "/create",
            &identity,
            Some(payload.clone()),
        )
        .await;
        let under_way = created.as_ref().is_ok_and(|r| {
            matches!(
                r.headers().has(crate::contract::CREATE_UNDER_WAY_HEADER),
                Ok(true)
            )
        });
        if !under_way || now_ms() >= deadline_ms {
            break created;
        }
        waited = true;
        worker::Delay::from(std::time::Duration::from_millis(250)).await;
    };
    // Opened, and the entry this create found may be one a failed create of the room
    // made and is removing (it was not listed before it): claimed (made this create's,
    // or admitted again), once the room is open. After a wait for that create, always;
    // without one, when the entry was there before (a failed create's, or the room's
    // last opening's, whose late archive must not take the new opening's entry).
    let opened = created.as_ref().is_ok_and(|r| r.status_code() == 201);
    if opened && (waited || listed_before) {
        // As new as this opening: a late archive of the last opening (ended before
        // it) leaves it.
        let mut claim = entry;
        claim["claim"] = true.into();
        claim["created_ms"] = now_ms().into();
        let again = call(&dir, Method::Post, "/add", &identity, Some(claim)).await;
        if !again.as_ref().is_ok_and(|r| r.status_code() == 200) {
            let status = again.map(|r| r.status_code()).ok();
            crate::platform::log_json(serde_json::json!({"level":"error",
                "event":"directory_readmit_failed","room": room.as_str(), "status": status}));
        }
    }
    // The entry stays when the room is live: created now, or already live (409
    // `room_exists`: a concurrent create of the same room won, and its entry is this
    // one), or being opened by a concurrent create (503 `room_opening`: that create
    // keeps or removes the entry). Otherwise, a refused or failed create leaves no
    // entry behind.
    let live = created.as_ref().is_ok_and(|r| {
        let under_way = r.headers().has(crate::contract::CREATE_UNDER_WAY_HEADER);
        r.status_code() == 201 || r.status_code() == 409 || matches!(under_way, Ok(true))
    });
    if !live && !listed_before {
        // `OVATION_TEST_DIRECTORY_REMOVE_DELAY_MS` (tests): the removal lands late, after
        // a create that waited for this one opened the room and claimed the entry.
        let delay_ms = crate::number_binding::<u64>(env, "OVATION_TEST_DIRECTORY_REMOVE_DELAY_MS")
            .map(|ms| ms.min(ovation_proto::limits::TEST_DIRECTORY_REMOVE_DELAY_MS_MAX));
        if let Some(delay_ms) = delay_ms {
            worker::Delay::from(std::time::Duration::from_millis(delay_ms)).await;
        }
        let remove = json!({ "room": room.as_str(), "admitted_by": admitted_by });
        let _ = call(&dir, Method::Post, "/remove", &identity, Some(remove)).await;
    }
    created
}

pub(crate) async fn end_room(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let room = room_param(&req)?;
    let identity = admin(&req, env)?;
    identity.authorize_room(room.as_str()).map_err(auth_error)?;
    let stub = room_stub(env, &identity.tenant, &room)?;
    // The room object settles its gifts and archives it in the directory (again, if an
    // earlier end left either undone).
    call(&stub, Method::Post, "/end", &identity, Some(json!({}))).await
}

pub(crate) async fn list_rooms(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let identity = admin(&req, env)?;
    // The list names every room of the tenant: a token scoped to one room reads none
    // of the others' titles, hosts or recordings.
    identity.authorize_room("*").map_err(auth_error)?;
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    let query = ovation_room::DirectoryQuery::parse(url.query_pairs())
        .map_err(|e| ApiError::new(e.http_status(), e.code(), &e.message()))?;
    let dir = directory_stub(env, &identity.tenant)?;
    let path = format!("/list?{}", query.to_query_string());
    call(&dir, Method::Get, &path, &identity, None).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Broadcast {
    text: String,
}

pub(crate) async fn broadcast(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let body: Broadcast = json_body(&mut req).await?;
    if body.text.len() > SYSTEM_MESSAGE_BYTES_MAX {
        return Err(ApiError::new(400, "too_long", "text is too long"));
    }
    admin_forward(
        req,
        env,
        "admin",
        Some(json!({ "command": "broadcast", "text": body.text })),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    user: String,
    /// Forwarded as sent (a `Value` would turn a whole number past 2^64 into a float).
    payload: Box<serde_json::value::RawValue>,
}

pub(crate) async fn direct(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let body: Direct = json_body(&mut req).await?;
    admin_forward(
        req,
        env,
        "admin",
        Some(json!({ "command": "direct", "user": body.user,
                     "payload": body.payload.get() })),
    )
    .await
}

/// Forwards a staff command (the room's `StaffCommand` JSON) to the room object, which
/// runs it for the admin and writes it to the audit trail. The JSON is checked here
/// first, so a malformed command is a 400 naming what is wrong.
pub(crate) async fn staff_forward(
    req: Request,
    env: &Env,
    command: StaffCommand,
) -> std::result::Result<Response, ApiError> {
    admin_forward(
        req,
        env,
        "admin",
        Some(json!({ "command": "staff", "action": command })),
    )
    .await
}

/// `POST /v1/rooms/{room}/polls`: opens a poll (limits are checked by the room, which
/// answers 400 `invalid_poll` naming the one broken, or 409 `poll_open`).
pub(crate) async fn create_poll(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let spec: ovation_room::PollSpec = json_body(&mut req).await?;
    staff_forward(req, env, StaffCommand::CreatePoll { spec }).await
}

/// `POST /v1/rooms/{room}/quizzes`: creates a quiz (phase `new`; `…/next` asks).
pub(crate) async fn create_quiz(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let spec: ovation_room::QuizSpec = json_body(&mut req).await?;
    staff_forward(req, env, StaffCommand::CreateQuiz { spec }).await
}

/// `POST /v1/rooms/{room}/products`: pins a product card.
pub(crate) async fn pin_product(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let product: ovation_room::ProductCard = json_body(&mut req).await?;
    staff_forward(req, env, StaffCommand::PinProduct { product }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QaSettings {
    approval: bool,
}

/// `POST /v1/rooms/{room}/qa/settings`: `{"approval": true}` holds new questions for
/// moderators.
pub(crate) async fn qa_settings(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let body: QaSettings = json_body(&mut req).await?;
    let approval = body.approval;
    staff_forward(req, env, StaffCommand::QaSettings { approval }).await
}

/// `POST /v1/rooms/{room}/moderation`: `{"command": "mute", "user": "u1", …}`.
pub(crate) async fn moderation(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let body: serde_json::Value = json_body(&mut req).await?;
    let name = body["command"].as_str().unwrap_or_default();
    if !StaffCommand::MODERATION.contains(&name) {
        return Err(ApiError::new(
            400,
            "invalid_command",
            &format!(
                "`command` is one of {}",
                StaffCommand::MODERATION.join(", ")
            ),
        ));
    }
    let command = staff_command(body)?;
    staff_forward(req, env, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetShards {
    shards: u16,
}

/// `POST /v1/rooms/{room}/shards`: `{"shards": 8}` grows a big room (admins only).
pub(crate) async fn set_shards(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let body: SetShards = json_body(&mut req).await?;
    let command = json!({ "command": "set_shards", "shards": body.shards });
    let (resp, tenant, room) = admin_forward_naming(req, env, "admin", Some(command)).await?;
    if resp.status_code() == 200 {
        // This isolate's next viewers land on the new shards at once.
        crate::join::forget_room(&tenant, &room);
    }
    Ok(resp)
}

/// `POST /v1/rooms/{room}/commands`: any staff command, the same JSON a host or
/// moderator sends over the socket.
pub(crate) async fn command(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    let body: serde_json::Value = json_body(&mut req).await?;
    let command = staff_command(body)?;
    staff_forward(req, env, command).await
}

/// A staff command from a request body, as the socket's `ClientFrame::Command` takes it.
pub(crate) fn staff_command(
    body: serde_json::Value,
) -> std::result::Result<StaffCommand, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::new(400, "invalid_command", &e.to_string()))
}

/// The path's segment at `index` (0 is `v1`): a route parameter after `/v1/rooms/{room}/x/`.
pub(crate) fn path_segment(req: &Request, index: usize) -> std::result::Result<String, ApiError> {
    let url = req.url().map_err(|_| ApiError::bad_request("bad url"))?;
    Ok(url
        .path_segments()
        .and_then(|mut s| s.nth(index))
        .unwrap_or_default()
        .to_owned())
}

/// `POST /v1/rooms/{room}/polls/{id}/close`, `…/quizzes/{id}/next`, `…/qa/{id}/hide`, …:
/// a staff command on the interaction named by the path.
pub(crate) async fn id_command(
    req: Request,
    env: &Env,
    command: fn(String) -> StaffCommand,
) -> std::result::Result<Response, ApiError> {
    let id = path_segment(&req, 4)?;
    staff_forward(req, env, command(id)).await
}

pub(crate) async fn put_part(
    mut req: Request,
    env: &Env,
) -> std::result::Result<Response, ApiError> {
    // The value is stored as sent, checked to be JSON (a `Value` would turn a whole
    // number past 2^64 into a float and answer 200 for data it altered).
    let value: Box<serde_json::value::RawValue> = json_body(&mut req).await?;
    let name = path_segment(&req, 4)?;
    admin_forward(
        req,
        env,
        "admin",
        Some(json!({ "command": "set_part", "name": name, "value": value.get() })),
    )
    .await
}
