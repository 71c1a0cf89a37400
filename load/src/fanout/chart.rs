//! The PNG chart of a fan-out run: per-second latency (p50, p99) of the comments sent in
//! that second on top, deliveries per second below. Drawn with plotters' pure-Rust bitmap
//! backend; its text needs a TrueType font (see `chart_font`): without one the chart is
//! drawn without text rather than not at all.

use super::FanoutReport;
use crate::chart_font::{font_available, FONT_FAMILY};
use plotters::prelude::*;
use std::path::Path;

pub const CHART_WIDTH_PX: u32 = 1_100;
pub const CHART_HEIGHT_PX: u32 = 750;
/// Draws `report`'s series into a PNG at `path`.
pub fn draw(report: &FanoutReport, path: &Path) -> Result<(), String> {
    draw_with_text(report, path, font_available())
}

fn draw_with_text(report: &FanoutReport, path: &Path, text: bool) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let root = BitMapBackend::new(path, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(CHART_HEIGHT_PX * 3 / 5);
    let seconds = report.series.len().max(1) as f64;

    let latency_ms_top = report
        .series
        .iter()
        .map(|s| s.latency_ms_p99)
        .fold(1.0_f64, f64::max)
        * 1.1;
    // Whole milliseconds, unless the whole axis spans only a few.
    let latency_digits = if latency_ms_top < 10.0 { 1 } else { 0 };
    let latency_label = |ms: &f64| format!("{ms:.latency_digits$}");
    let mut builder = ChartBuilder::on(&top);
    builder.margin(14);
    if text {
        builder
            .caption(
                format!(
                    "fanout to {}: {} rooms, {} viewers, {} comments/s per room — p50 {:.1} ms, \
                     p99 {:.1} ms, lost {}",
                    report.target,
                    report.rooms,
                    report.viewers,
                    report.comments_per_s,
                    report.latency_ms_p50,
                    report.latency_ms_p99,
                    report.losses
                ),
                (FONT_FAMILY, 18),
            )
            .x_label_area_size(32)
            .y_label_area_size(64);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..seconds, 0.0..latency_ms_top)
        .map_err(|e| fail(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("second of the measured window (comments sent in it)")
            .y_desc("latency (ms)")
            .x_label_formatter(&|second| format!("{second:.0}"))
            .y_label_formatter(&latency_label)
            .label_style((FONT_FAMILY, 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| fail(&e))?;
    let line = |pick: fn(&super::SecondSample) -> f64| -> Vec<(f64, f64)> {
        report
            .series
            .iter()
            .filter(|s| s.deliveries > 0 || s.latency_ms_p99 > 0.0)
            .map(|s| (s.second as f64 + 0.5, pick(s)))
            .collect()
    };
    for (name, color, points) in [
        ("p50", BLUE, line(|s| s.latency_ms_p50)),
        ("p99", RED, line(|s| s.latency_ms_p99)),
    ] {
        let series = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| fail(&e))?;
        if text {
            series.label(name).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
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

    let deliveries_top = report
        .series
        .iter()
        .map(|s| s.deliveries as f64)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut builder = ChartBuilder::on(&bottom);
    builder.margin(14);
    if text {
        builder.x_label_area_size(32).y_label_area_size(64);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..seconds, 0.0..deliveries_top)
        .map_err(|e| fail(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("second of the measured window")
            .y_desc("deliveries / s")
            .x_label_formatter(&|second| format!("{second:.0}"))
            .y_label_formatter(&|deliveries| format!("{deliveries:.0}"))
            .label_style((FONT_FAMILY, 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| fail(&e))?;
    let color = RGBColor(0, 140, 70);
    chart
        .draw_series(LineSeries::new(
            report
                .series
                .iter()
                .map(|s| (s.second as f64 + 0.5, s.deliveries as f64)),
            color.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::SecondSample;

    fn report() -> FanoutReport {
        FanoutReport {
            target: "json".into(),
            rooms: 1,
            viewers: 50,
            comments_per_s: 20.0,
            series: (0..5)
                .map(|second| SecondSample {
                    second,
                    deliveries: 1_000 + second * 10,
                    latency_ms_p50: 1.0 + second as f64,
                    latency_ms_p99: 3.0 + second as f64,
                    viewers_connected: 50,
                })
                .collect(),
            ..FanoutReport::default()
        }
    }

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
    }

    #[test]
    fn a_chart_is_drawn_with_or_without_a_font() {
        let dir = std::env::temp_dir();
        let with_font = dir.join(format!("ovation-load-chart-{}.png", std::process::id()));
        draw(&report(), &with_font).unwrap();
        assert!(is_png(&with_font));
        let without = dir.join(format!(
            "ovation-load-chart-plain-{}.png",
            std::process::id()
        ));
        draw_with_text(&report(), &without, false).unwrap();
        assert!(is_png(&without));
        // An empty run still draws (axes only).
        draw_with_text(&FanoutReport::default(), &without, false).unwrap();
        let _ = std::fs::remove_file(with_font);
        let _ = std::fs::remove_file(without);
    }
}
