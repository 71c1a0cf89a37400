// The overlay's bounds on what it keeps on screen and for how long. Copies of the
// OVERLAY_* constants in crates/proto/src/limits.rs (tests/tests/js_limits.rs checks them).

export const COMMENTS_MAX = 100;
export const DANMAKU_LANES = 6;
export const DANMAKU_ITEMS_MAX = 40;
export const HEARTS_MAX = 24;
export const GIFT_POPS_MAX = 3;
export const TOAST_MS = 4000;
