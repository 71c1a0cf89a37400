//! `cargo xtask bench shards`: the S curve of our rooms, every (viewers, shards) pair
//! run under the fan-out benchmark's host and load, one after another.

use super::outcome::Outcome;
use super::report::{format_number, print_table};
use super::{measure, options, prepare, Params, OURS};
use crate::{step, Result};
use ovation_proto::limits::{room_sockets_max, SHARDS_PER_ROOM_MAX, SHARD_VIEWERS_TARGET};
use serde_json::json;
use std::fs;

const SHARDS_USAGE: &str = "\
usage: cargo xtask bench shards [--viewers 1000,5000,10000] [--shards 0,1,2,4]
                                [--comments-per-s C] [--duration-s D] [--seed S] ...
runs our rooms alone at every (viewers, shards) pair, one after another, under the same
host and load as `cargo xtask bench fanout` (whose other options it takes): how S shards
change deliveries per CPU-second and p99 latency. S = 0: the room object holds every
socket (at most 10,000); S > 0: the room is created small and grown to S shards.";

/// `cargo xtask bench shards`: the S curve of our rooms.
pub fn bench_shards() -> Result {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "shards")
        .skip(1)
        .collect();
    let mut viewer_counts: Vec<u64> = vec![1_000, 5_000, 10_000];
    let mut shard_counts: Vec<u16> = vec![0, 1, 2, 4];
    let mut load_options = Vec::new();
    for (name, value) in options(&args, SHARDS_USAGE)? {
        let bad = |e: &dyn std::fmt::Display| format!("{name} {value}: {e}\n{SHARDS_USAGE}");
        match name.as_str() {
            "--only" => return Err(format!("bench shards runs ours only\n{SHARDS_USAGE}")),
            "--viewers" => viewer_counts = parse_list(&value).map_err(|e| bad(&e))?,
            "--shards" => shard_counts = parse_list(&value).map_err(|e| bad(&e))?,
            _ => load_options.push((name, value)),
        }
    }
    if let Some(shards) = shard_counts.iter().find(|&&s| s > SHARDS_PER_ROOM_MAX) {
        return Err(format!(
            "--shards {shards}: at most {SHARDS_PER_ROOM_MAX} per room"
        ));
    }
    if viewer_counts.contains(&0) {
        return Err(format!(
            "--viewers: each count must be at least 1\n{SHARDS_USAGE}"
        ));
    }
    let mut params = Params::parse(&load_options, SHARDS_USAGE)?;
    params.only = vec![OURS];
    let bench = prepare(true, "shards")?;
    if let Some(error) = &bench.worker_build_error {
        return Err(error.clone());
    }

    let mut cells = Vec::new();
    let runs = viewer_counts.len() * shard_counts.len();
    for &viewers in &viewer_counts {
        for &shards in &shard_counts {
            let sockets_max = room_sockets_max(shards) as u64;
            let per_room = viewers.div_ceil(params.rooms.max(1));
            let outcome = if per_room > sockets_max {
                Err(format!(
                    "{per_room} viewers in a room are more than {shards} shard(s) hold \
                     ({sockets_max} sockets)"
                ))
            } else {
                step(&format!(
                    "shards: run {} of {runs}: {viewers} viewers, S = {shards}",
                    cells.len() + 1
                ));
                params.viewers = viewers;
                params.shards = (shards > 0).then_some(shards);
                // Created below the sharding threshold, then grown to S: the same room
                // whatever the audience would have given.
                params.expected_audience = Some(per_room.min(SHARD_VIEWERS_TARGET));
                let out = bench.out.join(format!("{viewers}-viewers-{shards}-shards"));
                fs::create_dir_all(&out)
                    .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
                measure(OURS, &params, &bench.generator, &out, bench.ticks_per_s)
            };
            if let Err(error) = &outcome {
                eprintln!("shards: {viewers} viewers, S = {shards}: {error}");
            }
            cells.push((viewers, shards, outcome));
        }
    }

    step("shards: results");
    println!(
        "\nshards: ours alone; per room {} comments/s, {} s measured; each cell: deliveries \
         per CPU-second, p99 ms, and (when any) deliveries lost and comments sampled (shown to their sender \
         only)",
        params.comments_per_s, params.duration_s
    );
    let mut headers = vec!["viewers".to_owned()];
    headers.extend(shard_counts.iter().map(|s| format!("S = {s}")));
    let rows: Vec<Vec<String>> = viewer_counts
        .iter()
        .map(|&viewers| {
            let mut row = vec![format_number(Some(viewers as f64), 0)];
            row.extend(
                cells
                    .iter()
                    .filter(|(v, _, _)| *v == viewers)
                    .map(|(_, _, outcome)| shard_cell(outcome)),
            );
            row
        })
        .collect();
    print_table(
        &headers.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    );
    let report = json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cells": cells.iter().map(|(viewers, shards, outcome)| match outcome {
            Ok(o) => json!({
                "viewers": viewers, "shards": shards, "ok": o.error.is_none(),
                "error": o.error,
                "deliveries_per_cpu_s": o.deliveries_per_cpu_s(),
                "server_cpu_us_per_message": o.cpu_us_per_message(),
                "server_cpu_s": o.server_cpu_s,
                "report": o.report,
            }),
            Err(error) => json!({
                "viewers": viewers, "shards": shards, "ok": false, "error": error,
            }),
        }).collect::<Vec<_>>(),
    });
    let report_path = bench.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    fs::write(&report_path, text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("\nreport: {}", report_path.display());
    Ok(())
}

/// `1000,5000` → `[1000, 5000]`.
fn parse_list<T: std::str::FromStr>(value: &str) -> std::result::Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    let list = value
        .split(',')
        .map(|item| {
            item.trim()
                .parse::<T>()
                .map_err(|e| format!("`{item}`: {e}"))
        })
        .collect::<std::result::Result<Vec<T>, String>>()?;
    if list.is_empty() {
        return Err("an empty list".into());
    }
    Ok(list)
}

fn shard_cell(outcome: &Result<Outcome>) -> String {
    let Ok(o) = outcome else {
        return "not run".into();
    };
    if o.report.is_null() {
        return "failed".into();
    }
    let mut cell = format!(
        "{} / {} ms",
        format_number(o.deliveries_per_cpu_s(), 0),
        format_number(o.number("latency_ms_p99"), 0)
    );
    let (lost, sampled) = (
        o.number("losses").unwrap_or(0.0),
        o.number("comments_sampled").unwrap_or(0.0),
    );
    if lost > 0.0 {
        cell.push_str(&format!(", {lost} lost"));
    }
    if sampled > 0.0 {
        cell.push_str(&format!(", {sampled} sampled"));
    }
    cell
}
