//! The soak's chart, target/bench/soak/memory.png: resident memory over time, one line
//! per target.

use super::outcome::Outcome;
use super::Params;
use crate::chart_font::{font_available, FONT_FAMILY};
use crate::Result;
use plotters::prelude::*;
use std::path::Path;

const CHART_WIDTH_PX: u32 = 1_200;
const CHART_HEIGHT_PX: u32 = 700;

/// Resident memory over time, one line per target (minutes since its server started).
pub(super) fn draw_chart(params: &Params, outcomes: &[Outcome], path: &Path) -> Result {
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let text = font_available();
    let root = BitMapBackend::new(path, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let minutes_top = outcomes
        .iter()
        .flat_map(|o| o.samples.iter().map(|s| s.t_s / 60.0))
        .fold(1.0_f64, f64::max);
    let mib_top = outcomes
        .iter()
        .flat_map(|o| {
            o.samples
                .iter()
                .map(|s| s.resident.workerd as f64 / (1 << 20) as f64)
        })
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if text {
        builder
            .caption(
                format!(
                    "workerd resident memory: held sockets ({}), then a {}-minute soak ({})",
                    params
                        .held
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    params.minutes,
                    params.soak_only.join(", ")
                ),
                (FONT_FAMILY, 18),
            )
            .x_label_area_size(36)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..minutes_top, 0.0..mib_top)
        .map_err(|e| fail(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("minutes since the server started")
            .y_desc("resident MiB (workerd)")
            .x_label_formatter(&|m| format!("{m:.0}"))
            .y_label_formatter(&|m| format!("{m:.0}"))
            .label_style((FONT_FAMILY, 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| fail(&e))?;
    let colors = [RED, BLUE];
    for (outcome, color) in outcomes.iter().zip(colors) {
        let points: Vec<(f64, f64)> = outcome
            .samples
            .iter()
            .map(|s| (s.t_s / 60.0, s.resident.workerd as f64 / (1 << 20) as f64))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| fail(&e))?;
        if text {
            let name = outcome.target;
            series.label(name).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        // Ours: the part of it that is the isolate's wasm memory (the Rust heap).
        let wasm: Vec<(f64, f64)> = outcome
            .samples
            .iter()
            .filter_map(|s| Some((s.t_s / 60.0, s.resident.wasm? as f64 / (1 << 20) as f64)))
            .collect();
        if !wasm.is_empty() {
            let faint = color.mix(0.45);
            let series = chart
                .draw_series(LineSeries::new(wasm, faint.stroke_width(2)))
                .map_err(|e| fail(&e))?;
            if text {
                let name = format!("{} (wasm memory only)", outcome.target);
                series.label(name).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], faint.stroke_width(2))
                });
            }
        }
        // The soak's warm-up end, where the growth figure starts.
        if let Some(soak) = &outcome.soak {
            let x = soak.warmup_end_s / 60.0;
            chart
                .draw_series(LineSeries::new(
                    [(x, 0.0), (x, mib_top)],
                    color.mix(0.4).stroke_width(1),
                ))
                .map_err(|e| fail(&e))?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font((FONT_FAMILY, 13))
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
