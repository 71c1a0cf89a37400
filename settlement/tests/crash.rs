//! Crash test: SIGKILL the real service in the middle of settlement at random points,
//! restart it on the same data, settle again; the host is paid exactly once.

use ovation_settlement::postgres_admin::{drop_databases, fresh_databases};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "crash-test-secret-0123";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(storage: &[String], step_pause_ms: u64) -> Service {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ovation-settlement"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--secret", SECRET])
            .args(["--step-pause-ms", &step_pause_ms.to_string()])
            .args(storage)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start ovation-settlement");
        let service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if ureq::get(&format!("{}/v1/openapi.json", service.base))
                .call()
                .is_ok()
            {
                return service;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("settlement service did not start");
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.base, method, path, body)
    }
}

fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::request(method, &format!("{base}{path}"))
        .set("authorization", &format!("Bearer {SECRET}"))
        .timeout(Duration::from_secs(30));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (0, json!({ "transport": e.to_string() })),
    };
    let status = response.status();
    (status, response.into_json().unwrap_or(Value::Null))
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the room's status seen right after the restart.
fn trial(storage: &[String], kill_after_ms: u64, room: &str) -> String {
    let service = Service::start(storage, 25);
    assert_eq!(
        service
            .call(
                "POST",
                &format!("/v1/rooms/{room}/open"),
                Some(json!({"host": "star"}))
            )
            .0,
        200
    );
    let mut gifted = 0;
    for u in 0..12 {
        let user = format!("{room}-fan-{u}");
        let deposit = json!({ "amount": 100, "id": "seed" });
        assert_eq!(
            service
                .call(
                    "POST",
                    &format!("/v1/accounts/{user}/deposit"),
                    Some(deposit)
                )
                .0,
            200
        );
        let amount = 5 + u;
        let gift = json!({ "id": "g", "room": room, "from": user, "amount": amount, "sku": "rose", "qty": 1 });
        assert_eq!(service.call("POST", "/v1/gifts", Some(gift)).0, 200);
        gifted += amount;
    }
    let host_before = service.call("GET", "/v1/accounts/star", None).1["balance"]
        .as_u64()
        .unwrap();
    let base = service.base.clone();
    let path = format!("/v1/rooms/{room}/settle");
    let settling = std::thread::spawn(move || call(&base, "POST", &path, None));
    std::thread::sleep(Duration::from_millis(kill_after_ms));
    drop(service); // SIGKILL
    let _ = settling.join();

    let service = Service::start(storage, 0);
    let seen = service.call("GET", &format!("/v1/rooms/{room}"), None).1["status"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, settled) = service.call("POST", &format!("/v1/rooms/{room}/settle"), None);
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["status"], "settled");
    assert_eq!(
        settled["settled"], gifted,
        "killed after {kill_after_ms} ms"
    );
    assert_eq!(settled["gifted"], gifted);
    let host_after = service.call("GET", "/v1/accounts/star", None).1["balance"]
        .as_u64()
        .unwrap();
    assert_eq!(
        host_after - host_before,
        gifted,
        "host paid exactly once (killed after {kill_after_ms} ms)"
    );
    let again = service
        .call("POST", &format!("/v1/rooms/{room}/settle"), None)
        .1;
    assert_eq!(again["settled"], gifted);
    let late = json!({ "id": "late", "room": room, "from": format!("{room}-fan-0"), "amount": 1, "sku": "rose", "qty": 1 });
    assert_eq!(
        service.call("POST", "/v1/gifts", Some(late)).1["code"],
        "room_not_open"
    );
    let audit = service.call("GET", "/v1/audit", None).1;
    assert_eq!(audit["ok"], true, "{audit}");
    seen
}

/// Some kill must have landed between steps, or the test proves nothing.
fn assert_some_kill_was_mid_settlement(seen: &[String]) {
    assert!(
        seen.iter().any(|s| s == "settling"),
        "no kill landed mid-settlement: {seen:?}"
    );
}

/// Kill points spread over the settlement (8 steps × 25 ms on 4 shards), plus before and after.
const KILL_AFTER_MS: [u64; 6] = [0, 20, 60, 110, 170, 400];

#[test]
fn sqlite_settlement_survives_sigkill_at_any_point() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/settlement-crash")
        .join(std::process::id().to_string());
    let storage = vec![
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--shards".to_owned(),
        "4".to_owned(),
    ];
    let seen: Vec<String> = KILL_AFTER_MS
        .into_iter()
        .enumerate()
        .map(|(i, kill_after_ms)| trial(&storage, kill_after_ms, &format!("weur-crash-{i}")))
        .collect();
    assert_some_kill_was_mid_settlement(&seen);
}

#[test]
fn postgres_settlement_survives_sigkill_at_any_point() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let prefix = format!("ovation_crash_{}", std::process::id());
    let urls = runtime
        .block_on(fresh_databases(&prefix, 4))
        .expect("PostgreSQL on 127.0.0.1:5432");
    let storage = vec!["--postgres".to_owned(), urls.join(",")];
    let seen: Vec<String> = KILL_AFTER_MS
        .into_iter()
        .enumerate()
        .map(|(i, kill_after_ms)| trial(&storage, kill_after_ms, &format!("weur-crash-{i}")))
        .collect();
    assert_some_kill_was_mid_settlement(&seen);
    runtime
        .block_on(drop_databases(&prefix, None))
        .expect("drop the test databases");
}
