//! The fan-out benchmark's results: the table on stdout (with the ratios of ours over
//! each peer and the billing estimates) and target/bench/fanout/report.json.

use super::outcome::Outcome;
use super::{is_ours, Params};
use serde_json::{json, Value};

pub(crate) fn format_number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".into(),
    }
}

/// Prints rows under headers, the first column left-aligned and the others right-aligned.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([headers[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if column == 0 {
                    format!("{cell:<width$}", width = widths[column])
                } else {
                    format!("{cell:>width$}", width = widths[column])
                }
            })
            .collect();
        println!("  {}", text.join("  "));
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub(super) fn print_results(params: &Params, outcomes: &[Outcome]) {
    println!(
        "\nfanout: {} viewers in {} room(s); per room {} comments/s and {} likes/s; churn \
         {}/s; {} s measured after {} s warm-up; seed {}",
        params.viewers,
        params.rooms,
        params.comments_per_s,
        params.likes_per_s,
        params.churn_per_s,
        params.duration_s,
        params.warmup_s,
        params.seed
    );
    let ours = ours_measured(outcomes);
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| !o.report.is_null()).collect();
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|o| {
            vec![
                o.target.to_string(),
                format_number(o.number("viewers_connected"), 0),
                format_number(o.number("deliveries"), 0),
                format_number(o.number("losses"), 0),
                format_number(o.number("comments_sampled"), 0),
                format_number(o.number("duplicates"), 0),
                format_number(o.number("latency_ms_p50"), 1),
                format_number(o.number("latency_ms_p99"), 1),
                format_number(o.number("latency_ms_max"), 1),
                format_number(o.number("deliveries_per_s"), 0),
                format_number(o.joins_per_s(), 0),
                format_number(o.server_cpu_s, 2),
                format_number(o.deliveries_per_cpu_s(), 0),
                format_number(o.cpu_us_per_message(), 1),
                format_number(o.number("bytes_per_delivery"), 1),
            ]
        })
        .collect();
    print_table(
        &[
            "target",
            "viewers",
            "deliveries",
            "losses",
            "sampled",
            "dups",
            "p50 ms",
            "p99 ms",
            "max ms",
            "deliv/s",
            "joins/s",
            "server CPU s",
            "deliv/CPU-s",
            "CPU µs/msg",
            "B/delivery",
        ],
        &rows,
    );

    let mut headers_in = false;
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|o| {
            let wire = o.wire_bytes_per_delivery();
            headers_in |= wire.is_some_and(|(_, headers)| headers);
            let requests = o.durable_object_requests_per_1k_viewer_minutes(params);
            let mut row = vec![
                o.target.to_string(),
                format_number(o.number("generator_cpu_s"), 2),
                format_number(o.client_messages_per_delivery(), 4),
                format_number(wire.map(|(bytes, _)| bytes), 1),
                format_number(requests.map(|(connects, messages)| connects + messages), 0),
                format_number(requests.map(|(_, messages)| messages), 1),
                format_number(o.cpu_us_per_join(), 0),
                format_number(o.join_cores(), 2),
            ];
            // One pair of columns per runtime of ours: its deliveries per CPU-second over
            // this row's, and both p99s.
            for ours in &ours {
                if ours.target == o.target {
                    row.extend(["-".to_owned(), "-".to_owned()]);
                    continue;
                }
                row.push(format_number(
                    ratio(ours.deliveries_per_cpu_s(), o.deliveries_per_cpu_s()),
                    2,
                ));
                row.push(format!(
                    "{} vs {}",
                    format_number(ours.number("latency_ms_p99"), 1),
                    format_number(o.number("latency_ms_p99"), 1)
                ));
            }
            row
        })
        .collect();
    let mut headers: Vec<String> = [
        "target",
        "gen CPU s",
        "client msgs/delivery",
        "wire B/delivery",
        "DO req/1k viewer-min",
        "(messages)",
        "join CPU µs",
        "join cores",
    ]
    .map(String::from)
    .to_vec();
    for ours in &ours {
        headers.push(format!("{}/row deliv/CPU-s", ours.target));
        headers.push(format!("p99 ms {} vs row", ours.target));
    }
    println!();
    print_table(
        &headers.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    );
    let spans: Vec<String> = measured
        .iter()
        .filter(|o| o.server_cpu_span != "window")
        .map(|o| format!("{} ({})", o.target, o.server_cpu_span))
        .collect();
    println!(
        "\n  server CPU s: user + system time of every process in the server's process group \
         (node, workerd, ...) over the measured window{}; CPU µs/msg: that time \
         per WebSocket message the viewers received.\n  \
         wire B/delivery: the report's payload bytes per delivered comment{}.\n  \
         DO req/1k viewer-min (Durable Object targets): WebSocket connects (1 request \
         each; a {} s run pays every viewer's connect, so they dominate) + incoming \
         WebSocket messages / 20{} (the \"messages\" column), per 1,000 viewer-minutes of \
         the window.\n  \
         join CPU µs: the server group's CPU over the connect phase per viewer joined; \
         join cores: that CPU per second of the phase (near the machine's cores: joins \
         are bound by the server's work; well under: by each join's round trips, with \
         the generator keeping `CONNECT_CONCURRENCY` joins in flight).",
        if spans.is_empty() {
            String::new()
        } else {
            format!("; over the whole run for {}", spans.join(", "))
        },
        if headers_in {
            " plus the WebSocket frame header (2-4 bytes) of each message received"
        } else {
            " (the report counts no frames: frame headers not included)"
        },
        params.duration_s,
        match ours.iter().find_map(|o| o.number("do_internal_requests")) {
            Some(_) => " + room↔shard requests (ovation)",
            None => "",
        }
    );
    for dropped in measured
        .iter()
        .filter(|o| o.number("viewers_dropped").is_some_and(|d| d > 0.0))
    {
        println!(
            "\n  {}: {} viewers were dropped during the run (the server restarted or \
             reloaded?): its figures do not compare with the others'",
            dropped.target,
            format_number(dropped.number("viewers_dropped"), 0)
        );
    }
    for failed in outcomes.iter().filter(|o| o.error.is_some()) {
        println!(
            "\n  {} FAILED: {}",
            failed.target,
            failed.error.as_deref().unwrap_or_default()
        );
    }
}

/// Every runtime of ours that was measured without error, in run order.
fn ours_measured(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| is_ours(o.target) && o.error.is_none())
        .collect()
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    Some(numerator? / denominator.filter(|d| *d > 0.0)?)
}

pub(super) fn json_report(params: &Params, outcomes: &[Outcome], ticks_per_s: f64) -> Value {
    let ours = ours_measured(outcomes);
    let targets: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let wire = o.wire_bytes_per_delivery();
            // Keyed by the runtime of ours compared with this target.
            let versus_ours: serde_json::Map<String, Value> = ours
                .iter()
                .filter(|ours| ours.target != o.target)
                .map(|ours| {
                    (
                        ours.target.to_owned(),
                        json!({
                            "deliveries_per_cpu_s_ours_over_peer":
                                ratio(ours.deliveries_per_cpu_s(), o.deliveries_per_cpu_s()),
                            "latency_ms_p99_ours": ours.number("latency_ms_p99"),
                            "latency_ms_p99_peer": o.number("latency_ms_p99"),
                            "latency_ms_p99_ours_over_peer":
                                ratio(ours.number("latency_ms_p99"), o.number("latency_ms_p99")),
                        }),
                    )
                })
                .collect();
            json!({
                "target": o.target,
                "ok": o.error.is_none(),
                "error": o.error,
                "server_cpu_s": o.server_cpu_s,
                "server_cpu_span": o.server_cpu_span,
                "server_cpu_sample_s": o.window_s,
                "server_cpu_s_whole_run": o.server_cpu_s_whole_run,
                "deliveries_per_cpu_s": o.deliveries_per_cpu_s(),
                "server_cpu_us_per_message": o.cpu_us_per_message(),
                "joins_per_s": o.joins_per_s(),
                "server_cpu_us_per_join": o.cpu_us_per_join(),
                "server_cores_while_joining": o.join_cores(),
                "client_messages_per_delivery": o.client_messages_per_delivery(),
                "wire_bytes_per_delivery": wire.map(|(bytes, _)| bytes),
                "wire_bytes_include_frame_headers": wire.map(|(_, headers)| headers),
                "durable_object_requests": o.durable_object_requests(params).map(
                    |(connects, messages)| json!({"connects": connects, "messages": messages,
                        "total": connects + messages})),
                "durable_object_requests_per_1k_viewer_minutes":
                    o.durable_object_requests_per_1k_viewer_minutes(params).map(
                        |(connects, messages)| json!({"connects": connects,
                            "messages": messages, "total": connects + messages})),
                "versus_ours": versus_ours,
                "report": o.report,
            })
        })
        .collect();
    json!({
        "params": params.to_json(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "clock_ticks_per_s": ticks_per_s,
        "billing": "Durable Object requests: connects = WebSocket connects (1 each); \
            messages = incoming WebSocket messages / 20 (+ do_internal_requests for ovation \
            when reported); per 1,000 viewer-minutes = viewers_connected x duration_s / 60",
        "targets": targets,
    })
}
