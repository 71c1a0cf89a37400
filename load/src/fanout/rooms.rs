//! Our rooms through the admin API: created (and sharded) before a run against our server,
//! ended after it.

use super::plan::Plan;
use super::FanoutConfig;

fn admin_api(config: &FanoutConfig) -> ovation_cli::Api {
    ovation_cli::Api::new(&config.base, &config.minter.token("admin-1", "admin", "*"))
}

/// Creates every room through the admin API; a room that is live already is used as is.
pub(super) async fn create_rooms(
    config: &FanoutConfig,
    plan: &Plan,
    line: &mut impl FnMut(String),
) -> Result<(), String> {
    let api = admin_api(config);
    let room_ids = plan.room_ids.clone();
    let audience = plan.expected_audience;
    let shards = config.shards;
    let reused = tokio::task::spawn_blocking(move || {
        let mut reused = 0;
        for room in &room_ids {
            let body = serde_json::json!({
                "room": room, "host": "host-1", "title": "load", "expected_audience": audience,
            });
            let reply = api.post("/v1/rooms", &body)?;
            match reply.status {
                200 | 201 => {}
                409 => reused += 1,
                status => return Err(format!("creating room {room}: {status} {}", reply.body)),
            }
            if let Some(shards) = shards {
                let grow = serde_json::json!({ "shards": shards });
                let reply = api.post(&format!("/v1/rooms/{room}/shards"), &grow)?;
                if reply.status != 200 {
                    return Err(format!(
                        "sharding room {room}: {} {}",
                        reply.status, reply.body
                    ));
                }
            }
        }
        Ok(reused)
    })
    .await
    .map_err(|e| e.to_string())??;
    line(format!(
        "created {} room(s) at {} (expected audience {audience}){}",
        plan.room_ids.len() - reused,
        config.base,
        if reused > 0 {
            format!("; {reused} were live already and are reused")
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// Ends the rooms again so repeated runs do not pile up live rooms; failures are told,
/// not fatal (the measurement is done).
pub(super) async fn end_rooms(config: &FanoutConfig, plan: &Plan, line: &mut impl FnMut(String)) {
    let api = admin_api(config);
    let room_ids = plan.room_ids.clone();
    let failures = tokio::task::spawn_blocking(move || {
        room_ids
            .iter()
            .filter(|room| {
                !api.post(&format!("/v1/rooms/{room}/end"), &serde_json::json!({}))
                    .is_ok_and(|reply| reply.status == 200)
            })
            .count()
    })
    .await
    .unwrap_or(plan.room_ids.len());
    if failures > 0 {
        line(format!("could not end {failures} room(s); they stay live"));
    }
}
