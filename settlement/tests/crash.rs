//! Crash test: SIGKILL the real service after every committed write of a scenario that
//! opens a room, funds its senders, races identical copies of a gift for balances that
//! cover exactly one copy, and settles; on SQLite and on PostgreSQL, each in both gift
//! commit modes (batched, per-gift).
//!
//! The service is started with `--fault-pause-after-commit N`: after its N-th committed
//! write it stops writing and says so on stderr, and the test SIGKILLs it there, so the
//! trials kill it between every pair of writes, N = 1, 2, … until a run completes. After
//! each kill the service restarts on the same data: every read answers JSON on the state
//! left, a gift to a room whose opening did not commit is refused, and the whole scenario
//! retried (same ids) ends exactly where the reference model (`MemoryLedger`) does.

use ovation_ledger::{Deposit, Gift, MemoryLedger, ShardMap};
use ovation_settlement::postgres_admin::{drop_databases, fresh_databases};
use ovation_settlement::store::FAULT_PAUSE_MARKER;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Each service started has a bearer of its own, carried in its base address's fragment
/// (`http://127.0.0.1:PORT#START`), so a service is never mistaken for another: one started
/// on a port another test's took (two tests pick the same free port, and one fails to
/// bind) answers our requests 401, and ours is started again; and a scenario still
/// running against a killed service never reaches the next service given its port (by
/// this test or another: a settlement landing on another test's store once paid that
/// test's host twice and this one's never).
fn secret_of(base: &str) -> String {
    let (_, start) = base.split_once('#').expect("a base names its start");
    format!("crash-test-secret-{start}")
}

/// A service start's name, unique in this process.
fn next_start(port: u16) -> String {
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{port}-{n}")
}
const SHARDS: u16 = 4;
const FANS: usize = 4;
const COPIES: usize = 4;
const DEPOSIT: u64 = 60;
/// Covers exactly one copy of a fan's gift.
const GIFT: u64 = 50;
const HOST: &str = "star";

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
    paused: mpsc::Receiver<()>,
}

impl Service {
    fn start(storage: &[String], pause_after_commit: u64) -> Service {
        for _ in 0..5 {
            if let Some(service) = Service::try_start(storage, pause_after_commit) {
                return service;
            }
        }
        panic!("settlement service did not start");
    }

    /// The service on a free port, once it answers with our bearer; `None` when it
    /// exited (the port was taken meanwhile).
    fn try_start(storage: &[String], pause_after_commit: u64) -> Option<Service> {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}#{}", next_start(port));
        let mut child = Command::new(env!("CARGO_BIN_EXE_ovation-settlement"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--secret", &secret_of(&base)])
            .args([
                "--fault-pause-after-commit",
                &pause_after_commit.to_string(),
            ])
            .args(storage)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ovation-settlement");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, paused) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains(FAULT_PAUSE_MARKER) {
                    let _ = tx.send(());
                } else if line.contains("panicked") || line.contains("ERROR") {
                    eprintln!("service: {line}");
                }
            }
        });
        let mut service = Service {
            child,
            base,
            paused,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            // Ours answers our bearer (a route behind it); another's answers 401.
            let (status, _) = call(&service.base, "GET", "/v1/audit", None);
            if status == 200 {
                return Some(service);
            }
            if service.child.try_wait().ok().flatten().is_some() {
                return None; // exited: the port was another's
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("settlement service did not start");
    }

    /// SIGKILL (std's `Child::kill` on Unix), and reap.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer: status (0: no answer, the process died) and JSON body.
fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (url, _) = base.split_once('#').expect("a base names its start");
    let request = ureq::request(method, &format!("{url}{path}"))
        .set("authorization", &format!("Bearer {}", secret_of(base)))
        .timeout(Duration::from_secs(60));
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
    let text = response.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{method} {path} answered {status} with non-JSON {text:?}"));
    (status, body)
}

/// The names of one trial (each trial has its own room and users in the shared shards).
struct Names {
    room: String,
    fans: Vec<String>,
    probe: String,
}

impl Names {
    fn of(trial: &str) -> Names {
        Names {
            room: format!("weur-crash-{trial}"),
            fans: (0..FANS).map(|f| format!("fan-{trial}-{f}")).collect(),
            probe: format!("probe-{trial}"),
        }
    }

    fn gift(&self, fan: usize) -> Value {
        json!({ "id": "g", "room": self.room, "from": self.fans[fan], "amount": GIFT,
                "sku": "rose", "qty": 1 })
    }
}

/// Every answer the scenario got, in order (status and body).
type Answers = Vec<(String, u16, Value)>;

/// The scenario: open, fund, race copies, settle. Stops at the first call that got no
/// answer (the process was killed).
fn scenario(base: &str, names: &Names) -> Answers {
    let mut answers = Answers::new();
    let mut record = |what: String, answer: (u16, Value)| {
        let died = answer.0 == 0;
        answers.push((what, answer.0, answer.1));
        !died
    };
    let open = call(
        base,
        "POST",
        &format!("/v1/rooms/{}/open", names.room),
        Some(json!({ "host": HOST })),
    );
    if !record("open".into(), open) {
        return answers;
    }
    for fan in &names.fans {
        let deposit = call(
            base,
            "POST",
            &format!("/v1/accounts/{fan}/deposit"),
            Some(json!({ "amount": DEPOSIT, "id": "seed" })),
        );
        if !record(format!("deposit {fan}"), deposit) {
            return answers;
        }
    }
    for (f, fan) in names.fans.iter().enumerate() {
        let copies: Vec<_> = (0..COPIES)
            .map(|_| {
                let base = base.to_owned();
                let gift = names.gift(f);
                std::thread::spawn(move || call(&base, "POST", "/v1/gifts", Some(gift)))
            })
            .collect();
        let mut alive = true;
        for copy in copies {
            alive &= record(format!("gift {fan}"), copy.join().unwrap());
        }
        if !alive {
            return answers;
        }
    }
    let settle = call(
        base,
        "POST",
        &format!("/v1/rooms/{}/settle", names.room),
        None,
    );
    record("settle".into(), settle);
    answers
}

/// The reference model's state after the whole scenario (and a refused probe gift).
fn model_after_scenario(names: &Names) -> MemoryLedger {
    let mut model = MemoryLedger::new(ShardMap::new(SHARDS).unwrap());
    model.open_room(&names.room, HOST).unwrap();
    for fan in &names.fans {
        let seed = Deposit {
            id: "seed".into(),
            user: fan.clone(),
            amount: DEPOSIT,
        };
        model.deposit(&seed).unwrap();
    }
    for fan in &names.fans {
        for _ in 0..COPIES {
            let gift = Gift {
                id: "g".into(),
                room: names.room.clone(),
                from: fan.clone(),
                amount: GIFT,
                sku: "rose".into(),
                qty: 1,
            };
            model.gift(&gift).unwrap();
        }
    }
    model.settle(&names.room).unwrap();
    model
}

/// Whatever answer came before the kill must be one the model allows: a refusal of a
/// copy (402) is the bug this test exists for.
fn check_answers(answers: &Answers, complete: bool) {
    for (what, status, body) in answers {
        let expected: Option<Value> = match what.split(' ').next().unwrap() {
            "open" => Some(json!(HOST)).filter(|_| *status == 200),
            "deposit" => Some(json!(DEPOSIT)),
            "gift" => Some(json!(DEPOSIT - GIFT)),
            _ => None,
        };
        if *status == 0 && !complete {
            continue; // the call the kill cut off
        }
        assert_eq!(*status, 200, "{what}: {body}");
        if let Some(expected) = expected {
            let field = if what == "open" { "host" } else { "balance" };
            assert_eq!(body[field], expected, "{what}: {body}");
        }
    }
}

/// Kills the service after commit `n` of the scenario, restarts it, checks the state left
/// and the retried scenario against the model. Returns false when the scenario made
/// fewer than `n` commits (it completed without the pause).
fn trial(storage: &[String], n: u64, tag: &str) -> bool {
    let names = Names::of(&format!("{tag}-{n}"));
    let service = Service::start(storage, n);
    let (done_tx, done) = mpsc::channel();
    let base = service.base.clone();
    let runner = {
        let names = Names::of(&format!("{tag}-{n}"));
        std::thread::spawn(move || {
            let answers = scenario(&base, &names);
            let _ = done_tx.send(());
            answers
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let paused = loop {
        if service.paused.try_recv().is_ok() {
            break true;
        }
        if done.try_recv().is_ok() {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "trial {n}: neither paused nor done"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    if !paused {
        let answers = runner.join().unwrap();
        check_answers(&answers, true);
        return false;
    }
    service.kill();
    let answers = runner.join().unwrap();
    check_answers(&answers, false);

    let service = Service::start(storage, 0);
    let base = service.base.as_str();
    // Every read answers JSON on whatever the kill left.
    let (status, room) = call(base, "GET", &format!("/v1/rooms/{}", names.room), None);
    assert!(
        status == 200 || (status == 404 && room["code"] == "room_not_found"),
        "after commit {n}: {status} {room}"
    );
    let (status, audit) = call(base, "GET", "/v1/audit", None);
    assert_eq!(
        (status, &audit["ok"]),
        (200, &json!(true)),
        "after commit {n}: {audit}"
    );
    // A room whose opening did not commit takes no gift.
    let probed = status == 404 || room["status"] == "opening";
    if probed {
        let (status, _) = call(
            base,
            "POST",
            &format!("/v1/accounts/{}/deposit", names.probe),
            Some(json!({ "amount": 100, "id": "probe" })),
        );
        assert_eq!(status, 200);
        let probe = json!({ "id": "probe-gift", "room": names.room, "from": names.probe,
                            "amount": 1, "sku": "rose", "qty": 1 });
        let (status, body) = call(base, "POST", "/v1/gifts", Some(probe));
        assert_eq!(
            (status, &body["code"]),
            (409, &json!("room_not_open")),
            "after commit {n}: a gift to a room still opening"
        );
    }
    // The same calls again, to the end; then the state is the model's.
    let answers = scenario(base, &names);
    check_answers(&answers, true);
    let model = model_after_scenario(&names);
    let expected = model.room(&names.room).unwrap();
    let (status, settled) = answers.last().map(|(_, s, b)| (*s, b.clone())).unwrap();
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["status"], "settled", "after commit {n}");
    assert_eq!(settled["gifted"], expected.gifted, "after commit {n}");
    assert_eq!(settled["settled"], expected.settled, "after commit {n}");
    for user in &names.fans {
        let (_, account) = call(base, "GET", &format!("/v1/accounts/{user}"), None);
        assert_eq!(
            account["balance"],
            model.balance(user),
            "{user} after commit {n}"
        );
    }
    let (_, probe) = call(base, "GET", &format!("/v1/accounts/{}", names.probe), None);
    assert_eq!(
        probe["balance"],
        if probed { 100 } else { 0 },
        "refused, kept"
    );
    let (_, audit) = call(base, "GET", "/v1/audit", None);
    assert_eq!(audit["ok"], true, "after commit {n}: {audit}");
    true
}

/// Runs the trials N = 1, 2, … until the scenario completes before its N-th commit; the
/// host's balance (shared by every trial's room) is checked against the sum of the rooms.
fn kill_after_every_commit(storage: &[String], tag: &str) {
    let mut n = 1;
    while trial(storage, n, tag) {
        n += 1;
    }
    let commits = n - 1;
    // open (2 per shard) + deposits + one gift per fan + settle (its opening again,
    // clear, credit and mark per shard): far more than a handful, or the test is void.
    assert!(
        commits >= u64::from(SHARDS) * 5 + FANS as u64 * 2,
        "the scenario made only {commits} commits"
    );
    let service = Service::start(storage, 0);
    let (_, host) = call(&service.base, "GET", &format!("/v1/accounts/{HOST}"), None);
    // Every trial's room paid the host once; the last run (no kill) too.
    assert_eq!(host["balance"], (commits + 1) * FANS as u64 * GIFT);
    eprintln!("{tag}: killed after each of {commits} commits");
}

fn sqlite_storage(mode: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/settlement-crash")
        .join(format!("{}-{mode}", std::process::id()));
    vec![
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--shards".to_owned(),
        SHARDS.to_string(),
        "--gift-commit".to_owned(),
        mode.to_owned(),
    ]
}

#[test]
fn sqlite_open_gift_settle_survive_sigkill_after_every_commit() {
    kill_after_every_commit(&sqlite_storage("batched"), "sqlite");
}

/// The one-transaction-per-gift mode (kept for comparison) keeps the same promises.
#[test]
fn sqlite_per_gift_open_gift_settle_survive_sigkill_after_every_commit() {
    kill_after_every_commit(&sqlite_storage("per-gift"), "sqlite-per-gift");
}

#[test]
fn postgres_open_gift_settle_survive_sigkill_after_every_commit() {
    postgres_survives_sigkill_after_every_commit("batched");
}

/// PostgreSQL's one-transaction-per-gift mode keeps the same promises.
#[test]
fn postgres_per_gift_open_gift_settle_survive_sigkill_after_every_commit() {
    postgres_survives_sigkill_after_every_commit("per-gift");
}

fn postgres_survives_sigkill_after_every_commit(mode: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let prefix = format!(
        "ovation_crash_{}_{}",
        std::process::id(),
        mode.replace('-', "_")
    );
    let urls = runtime
        .block_on(fresh_databases(&prefix, SHARDS))
        .expect("PostgreSQL on 127.0.0.1:5432");
    let storage = vec![
        "--postgres".to_owned(),
        urls.join(","),
        "--gift-commit".to_owned(),
        mode.to_owned(),
    ];
    kill_after_every_commit(&storage, &format!("postgres-{mode}"));
    runtime
        .block_on(drop_databases(&prefix, None))
        .expect("drop the test databases");
}
