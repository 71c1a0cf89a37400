//! The soak's results: the table and the goals' verdicts on stdout, and
//! target/bench/soak/report.json.

use super::memory::mib;
use super::outcome::Outcome;
use super::{
    Params, CYCLE_ROOMS, CYCLE_VIEWERS, GROWTH_PERCENT_MAX, HELD_READ_AFTER_S, OURS,
    RELEASE_WAIT_S, REUSED_PERCENT_MIN,
};
use crate::fanout::{format_number, print_table};
use serde_json::{json, Value};

/// The goals with their verdicts: (name, figure, pass) with `None` when not measured.
pub(super) struct Goals {
    pub(super) lines: Vec<(String, String, Option<bool>)>,
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "not measured",
    }
}

pub(super) fn print_results(params: &Params, outcomes: &[Outcome]) -> Goals {
    println!(
        "\nsoak: resident memory (VmRSS) summed over each server's workerd processes; held \
         sockets are silent viewers in one room, read {HELD_READ_AFTER_S} s after the last \
         joined, and again {RELEASE_WAIT_S} s after they left and the room ended (ours) or \
         emptied (peer); \"again\": the first count once more, in a new room"
    );
    let mut rows = Vec::new();
    for outcome in outcomes {
        for held in &outcome.held {
            rows.push(vec![
                outcome.target.to_string(),
                format!("{}{}", held.sockets, if held.again { " again" } else { "" }),
                format_number(held.connected.map(|c| c as f64), 0),
                mib(held.before.workerd),
                mib(held.held.workerd),
                mib(held.after.workerd),
                format_number(held.bytes_per_socket_above_idle(&outcome.idle()), 0),
                format_number(held.bytes_per_socket(), 0),
                format_number(held.wasm_bytes_per_socket(), 0),
                format_number(held.returned_to_os_percent(), 0),
                held.error.clone().unwrap_or_default(),
            ]);
        }
    }
    print_table(
        &[
            "target",
            "sockets",
            "connected",
            "before MiB",
            "held MiB",
            "after MiB",
            "B/socket above idle",
            "B/socket this room",
            "of it wasm",
            "to the OS %",
            "error",
        ],
        &rows,
    );

    let mut goals = Goals { lines: Vec::new() };
    let ours = outcomes.iter().find(|o| o.target == OURS);
    let naive = outcomes.iter().find(|o| o.target == "naive-do");
    for &sockets in &params.held {
        let per_socket = |o: Option<&Outcome>| {
            let o = o?;
            o.held
                .iter()
                .find(|h| h.sockets == sockets && !h.again && h.error.is_none())?
                .bytes_per_socket_above_idle(&o.idle())
        };
        let (ours, naive) = (per_socket(ours), per_socket(naive));
        let pass = match (ours, naive) {
            (Some(ours), Some(naive)) => Some(ours <= naive),
            _ => None,
        };
        goals.lines.push((
            format!(
                "bytes per held socket at {sockets} (resident above idle): ours ≤ the naive \
                 object's"
            ),
            format!(
                "{} against {} ({}x)",
                format_number(ours, 0),
                format_number(naive, 0),
                format_number(ours.zip(naive).map(|(o, n)| o / n), 2)
            ),
            pass,
        ));
    }
    for outcome in outcomes {
        let Some(soak) = &outcome.soak else { continue };
        let growth = soak.growth(&outcome.samples);
        println!(
            "\nsoak of {}: {} min of {} viewers in {} rooms ({} comments/s and {} likes/s per \
             room, churn {}/s), {} polls opened ({} failed), {} short-lived room sets of {} \
             rooms and {} viewers created and ended ({} failed){}",
            outcome.target,
            params.minutes,
            params.viewers,
            params.rooms,
            params.comments_per_s,
            params.likes_per_s,
            params.churn_per_s,
            soak.polls_opened,
            soak.poll_failures,
            soak.cycles,
            CYCLE_ROOMS,
            CYCLE_VIEWERS,
            soak.cycle_failures,
            soak.error
                .as_ref()
                .map(|e| format!("; error: {e}"))
                .unwrap_or_default()
        );
        if let Some(error) = &soak.poll_failure_last {
            println!("  last poll failure: {error}");
        }
        if let Some(error) = &soak.cycle_failure_last {
            println!("  last cycle failure: {error}");
        }
        let number = |field: &str| soak.steady.get(field).and_then(Value::as_f64);
        println!(
            "  steady load: {} viewers connected, {} comments sent, {} likes sent, {} leaves \
             and {} joins again, {} deliveries lost",
            format_number(number("viewers_connected"), 0),
            format_number(number("comments_sent"), 0),
            format_number(number("likes_sent"), 0),
            format_number(number("churn_leaves"), 0),
            format_number(number("churn_joins"), 0),
            format_number(number("losses"), 0),
        );
        println!(
            "  workerd before the soak {} MiB, after it (and {RELEASE_WAIT_S} s quiet) {} MiB",
            mib(soak.before.workerd),
            mib(soak.after.workerd)
        );
        let figure = match &growth {
            Some((first, last, percent)) => format!(
                "{} MiB at {:.0} s → {} MiB at {:.0} s: {percent:+.2} %",
                mib(first.resident.workerd),
                first.t_s,
                mib(last.resident.workerd),
                last.t_s
            ),
            None => "too few samples after warm-up".into(),
        };
        println!("  after {} s warm-up: {figure}", params.warmup_s());
        if let Some((first, last, _)) = &growth {
            if let (Some(first_wasm), Some(last_wasm)) = (first.resident.wasm, last.resident.wasm) {
                println!(
                    "  of which the isolate's wasm memory: {} MiB → {} MiB",
                    mib(first_wasm),
                    mib(last_wasm)
                );
            }
        }
        goals.lines.push((
            format!(
                "{}: growth after warm-up < {GROWTH_PERCENT_MAX} % ({} min soak)",
                outcome.target, params.minutes
            ),
            figure,
            growth.map(|(_, _, percent)| percent < GROWTH_PERCENT_MAX),
        ));
    }
    for outcome in outcomes {
        let Some((sockets, first, again, reused)) = outcome.reuse() else {
            continue;
        };
        goals.lines.push((
            format!(
                "{}: a room that ended or emptied gives back ≥ {REUSED_PERCENT_MIN} % of what \
                 its sockets took, for the next room",
                outcome.target
            ),
            format!(
                "{reused:.0} % ({sockets} sockets grew workerd by {} MiB in the first room, \
                 {} MiB in the next)",
                mib(first.max(0.0) as u64),
                mib(again.max(0.0) as u64)
            ),
            Some(reused >= REUSED_PERCENT_MIN),
        ));
    }
    println!("\ngoals:");
    for (goal, figure, pass) in &goals.lines {
        println!("  {:<12} {goal}: {figure}", verdict(*pass));
    }
    for failed in outcomes.iter().filter(|o| o.error.is_some()) {
        println!(
            "\n  {} FAILED: {}",
            failed.target,
            failed.error.as_deref().unwrap_or_default()
        );
    }
    goals
}

pub(super) fn json_report(params: &Params, outcomes: &[Outcome], goals: &Goals) -> Value {
    let targets: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let soak = o.soak.as_ref().map(|soak| {
                let growth = soak.growth(&o.samples);
                json!({
                    "start_s": soak.start_s,
                    "warmup_end_s": soak.warmup_end_s,
                    "end_s": soak.end_s,
                    "before": soak.before.to_json(),
                    "after": soak.after.to_json(),
                    "growth_after_warmup_percent": growth.as_ref().map(|g| g.2),
                    "growth_first_sample": growth.as_ref().map(|g| json!({
                        "t_s": g.0.t_s, "workerd_rss_bytes": g.0.resident.workerd})),
                    "growth_last_sample": growth.as_ref().map(|g| json!({
                        "t_s": g.1.t_s, "workerd_rss_bytes": g.1.resident.workerd})),
                    "polls_opened": soak.polls_opened,
                    "poll_failures": soak.poll_failures,
                    "poll_failure_last": soak.poll_failure_last,
                    "room_sets_created_and_ended": soak.cycles,
                    "room_set_failures": soak.cycle_failures,
                    "room_set_failure_last": soak.cycle_failure_last,
                    "steady_load_report": soak.steady,
                    "error": soak.error,
                })
            });
            json!({
                "target": o.target,
                "ok": o.error.is_none(),
                "error": o.error,
                "held": o.held.iter().map(|h| h.to_json(&o.idle())).collect::<Vec<_>>(),
                "reuse": o.reuse().map(|(sockets, first, again, reused)| json!({
                    "sockets": sockets, "first_growth_bytes": first,
                    "again_growth_bytes": again, "reused_percent": reused})),
                "soak": soak,
                "samples": o.samples.iter().map(|s| json!({
                    "t_s": s.t_s, "phase": s.phase,
                    "workerd_rss_bytes": s.resident.workerd,
                    "workerd_rss_anon_bytes": s.resident.workerd_anon,
                    "group_rss_bytes": s.resident.all,
                    "wasm_memory_bytes": s.resident.wasm,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory": "VmRSS from /proc/<pid>/status summed over the workerd processes of the \
            server's process group (group_rss_bytes: every process of the group, the node \
            host included)",
        "goals": goals.lines.iter().map(|(goal, figure, pass)| json!({
            "goal": goal, "figure": figure, "pass": pass})).collect::<Vec<_>>(),
        "targets": targets,
    })
}
