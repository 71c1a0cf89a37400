//! The font of the benchmark charts (the fan-out chart here, the soak's memory chart in
//! xtask, which compiles this same file): a TrueType file read from the usual places,
//! never looked up over a network or through fontconfig, and registered with plotters at
//! run time. `OVATION_LOAD_FONT` names a file to try first. Without a font a chart is
//! drawn without text rather than not at all.
//!
//! xtask includes this file with `#[path]` rather than depending on ovation-load, whose
//! tokio and WebSocket stack it would otherwise build; so it uses nothing but std and
//! plotters.

use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The environment variable naming a font file to try before the usual places.
pub const FONT_ENV: &str = "OVATION_LOAD_FONT";
/// Fonts tried in order (Debian's DejaVu first) after `FONT_ENV`'s.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];
/// Larger files are not fonts we want to keep in memory for a chart.
const FONT_BYTES_MAX: u64 = 16 << 20;
/// The family the charts' text styles name.
pub const FONT_FAMILY: &str = "sans-serif";

/// The files tried, in order: `from_env` (the override) first.
fn candidates(from_env: Option<&str>) -> impl Iterator<Item = &str> {
    from_env.into_iter().chain(FONT_PATHS.iter().copied())
}

/// Registers a font as `FONT_FAMILY` once per process; false when none could be read.
pub fn font_available() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let from_env = std::env::var(FONT_ENV).ok();
        let bytes = candidates(from_env.as_deref())
            .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() <= FONT_BYTES_MAX))
            .find_map(|path| std::fs::read(path).ok());
        bytes.is_some_and(|bytes| {
            // plotters keeps fonts for the life of the process; so does this leak, once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_tried_before_the_usual_places() {
        let tried: Vec<&str> = candidates(Some("/opt/fonts/Mine.ttf")).collect();
        assert_eq!(tried[0], "/opt/fonts/Mine.ttf");
        assert_eq!(&tried[1..], FONT_PATHS);
        assert_eq!(candidates(None).collect::<Vec<_>>(), FONT_PATHS);
    }
}
