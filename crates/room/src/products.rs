//! Product offers: the host pins one product card at a time; viewers' clicks are counted
//! per product, one per viewer, and the totals go to hosts and moderators.
//!
//! Invariants: at most one card is pinned; clicks are counted only for products pinned
//! at some point in this room (at most `PRODUCTS_COUNTED_MAX`); a product's count grows
//! only with a user not counted for it before (at most `PRODUCT_CLICKERS_MAX` such users
//! and products in all, each stored as `clicker/<product>/<user>`), so one viewer
//! clicking again and again cannot raise the host's figures; every URL a card carries
//! has an allowed scheme and no userinfo (`user@host`: a viewer would read the user part
//! as the host), so an overlay can put it in an `href`/`src` unchecked.

use crate::Refusal;
use ovation_proto::limits::{
    PRODUCTS_COUNTED_MAX, PRODUCT_CLICKERS_MAX, PRODUCT_ID_BYTES_MAX, PRODUCT_PRICE_BYTES_MAX,
    PRODUCT_TITLE_BYTES_MAX, PRODUCT_URL_BYTES_MAX,
};
use ovation_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A product card; the body of `POST /v1/rooms/{room}/products`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductCard {
    pub id: String,
    pub title: String,
    /// The price as the viewer should read it ("€19.99").
    pub price: String,
    /// `https:` (or `http:`) image.
    pub image_url: String,
    /// Where a click leads: a web page or an app's deep link (`shop://item/42`).
    pub link: String,
    /// Shown when this cue plays in the video (see the video-sync design).
    #[serde(default)]
    pub cue: Option<String>,
}

impl ProductCard {
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= PRODUCT_ID_BYTES_MAX
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            return Err(format!(
                "a product id is 1..={PRODUCT_ID_BYTES_MAX} bytes of A-Z, a-z, 0-9, '-', '_', '.'"
            ));
        }
        if self.title.trim().is_empty() || self.title.len() > PRODUCT_TITLE_BYTES_MAX {
            return Err(format!("a title is 1..={PRODUCT_TITLE_BYTES_MAX} bytes"));
        }
        if self.price.trim().is_empty() || self.price.len() > PRODUCT_PRICE_BYTES_MAX {
            return Err(format!("a price is 1..={PRODUCT_PRICE_BYTES_MAX} bytes"));
        }
        check_url("image_url", &self.image_url, |scheme| {
            scheme == "https" || scheme == "http"
        })?;
        // Deep links may use an app's own scheme, never one that runs code in a page.
        check_url("link", &self.link, |scheme| {
            !matches!(scheme, "javascript" | "data" | "vbscript" | "file" | "blob")
        })?;
        crate::polls::check_cue(self.cue.as_deref())
    }
}

fn check_url(field: &str, url: &str, scheme_allowed: impl Fn(&str) -> bool) -> Result<(), String> {
    let refuse = || {
        Err(format!(
            "`{field}` must be an absolute URL (scheme://…) of at most {PRODUCT_URL_BYTES_MAX} bytes, without spaces"
        ))
    };
    if url.len() > PRODUCT_URL_BYTES_MAX || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return refuse();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return refuse();
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || rest.is_empty() {
        return refuse();
    }
    if !scheme_allowed(&scheme.to_ascii_lowercase()) {
        return Err(format!("`{field}` may not use the `{scheme}:` scheme"));
    }
    // `https://shop.example@evil.example/` leads to evil.example: whatever precedes an
    // `@` in the authority is userinfo a viewer reads as the host. Credentials have no
    // place in a card either. A backslash ends the authority in browsers (special
    // schemes), so one is refused there as well rather than guessed about.
    // `https:///shop.example@evil.example/`: browsers skip slashes (and backslashes)
    // after a special scheme, so an empty authority would hide the real one behind it.
    if rest.starts_with(['/', '\\']) {
        return Err(format!("`{field}` must name its host right after `://`"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains(['@', '\\']) {
        return Err(format!(
            "`{field}` may not carry credentials (`user@` or `user:password@` before the host)"
        ));
    }
    Ok(())
}

#[derive(Default)]
pub(crate) struct Products {
    pub pinned: Option<(ProductCard, u64)>,
    /// product id → clicks: the users who clicked it, each once (stored as `clicks/<id>`).
    /// A room stored by a build that counted every click may hold more than its
    /// clickers: that count is kept and grows by one per new clicker.
    pub clicks: BTreeMap<String, u64>,
    /// product id → the users counted for it (`clicker/<id>/<user>`).
    clickers: HashMap<String, HashSet<String>>,
    /// The sum of `clickers`' set sizes (≤ `PRODUCT_CLICKERS_MAX`).
    clickers_total: usize,
    /// Products whose count is new or changed since the hosts were last told (and the
    /// counts stored).
    pub clicks_changed: BTreeSet<String>,
}

/// What a click does to the host's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClickOutcome {
    /// The user's first click on this product: counted (and to be stored).
    Counted,
    /// The user was counted for this product before: nothing changes.
    Repeat,
}

impl Products {
    /// Pins a card (replacing the pinned one). Err when too many products were counted.
    pub fn pin(&mut self, card: ProductCard, now_ms: u64) -> Result<(), String> {
        if !self.clicks.contains_key(&card.id) {
            if self.clicks.len() >= PRODUCTS_COUNTED_MAX {
                return Err(format!(
                    "a room counts clicks for at most {PRODUCTS_COUNTED_MAX} products"
                ));
            }
            self.clicks.insert(card.id.clone(), 0);
            self.clicks_changed.insert(card.id.clone());
        }
        self.pinned = Some((card, now_ms));
        Ok(())
    }

    /// The pinned card's clicks are counted: a room stopped after a pin's card was stored
    /// and before its first count was (stored at the next tick) counts from 0 again,
    /// rather than refusing every click on the card `not_found`. Its count is stored at
    /// the next tick.
    pub fn count_pinned(&mut self) {
        if let Some((card, _)) = &self.pinned {
            if !self.clicks.contains_key(&card.id) {
                self.clicks.insert(card.id.clone(), 0);
                self.clicks_changed.insert(card.id.clone());
            }
        }
    }

    /// The clickers stored, beside the counts stored (`clicks`): a count is never below
    /// its clickers (a crash between a clicker's record and its count's, or a count
    /// stored by a build that counted every click, is taken as the larger).
    pub fn restore_clickers(&mut self, clickers: impl IntoIterator<Item = (String, String)>) {
        for (product_id, user) in clickers {
            if self.clickers_total >= PRODUCT_CLICKERS_MAX {
                break;
            }
            if self.clickers.entry(product_id).or_default().insert(user) {
                self.clickers_total += 1;
            }
        }
        for (product_id, users) in &self.clickers {
            let count = self.clicks.entry(product_id.clone()).or_insert(0);
            if *count < users.len() as u64 {
                *count = users.len() as u64;
                self.clicks_changed.insert(product_id.clone());
            }
        }
    }

    /// What `click` would do, changing nothing: count it, answer it as a repeat, or refuse
    /// it (a product never pinned here, or `PRODUCT_CLICKERS_MAX` reached). The room takes
    /// the user's reaction allowance only for a click that counts.
    pub fn check_click(&self, product_id: &str, user: &str) -> Result<ClickOutcome, Refusal> {
        if !self.clicks.contains_key(product_id) {
            return Err(Refusal::new(ErrorCode::NotFound, "no such product"));
        }
        if self
            .clickers
            .get(product_id)
            .is_some_and(|users| users.contains(user))
        {
            return Ok(ClickOutcome::Repeat);
        }
        if self.clickers_total >= PRODUCT_CLICKERS_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("a room counts at most {PRODUCT_CLICKERS_MAX} clicks (one per viewer and product)"),
            ));
        }
        Ok(ClickOutcome::Counted)
    }

    pub fn click(&mut self, product_id: &str, user: &str) -> Result<ClickOutcome, Refusal> {
        if let ClickOutcome::Repeat = self.check_click(product_id, user)? {
            return Ok(ClickOutcome::Repeat);
        }
        self.clickers
            .entry(product_id.to_owned())
            .or_default()
            .insert(user.to_owned());
        self.clickers_total += 1;
        *self.clicks.get_mut(product_id).expect("checked") += 1;
        self.clicks_changed.insert(product_id.to_owned());
        Ok(ClickOutcome::Counted)
    }

    /// The `product` part: the pinned card or `null`.
    pub fn part_json(&self) -> String {
        match &self.pinned {
            Some((card, pinned_ms)) => serde_json::json!({
                "pinned": card, "pinned_ms": pinned_ms,
            }),
            None => serde_json::json!({ "pinned": null }),
        }
        .to_string()
    }

    pub fn clicks_json(&self) -> String {
        serde_json::json!({ "type": "product_clicks", "clicks": self.clicks }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(image_url: &str, link: &str) -> ProductCard {
        ProductCard {
            id: "p1".into(),
            title: "Sneakers".into(),
            price: "€89.00".into(),
            image_url: image_url.into(),
            link: link.into(),
            cue: None,
        }
    }

    #[test]
    fn a_room_counts_at_most_product_clickers_max_clicks() {
        let mut products = Products::default();
        for id in ["a", "b"] {
            products
                .pin(
                    ProductCard {
                        id: id.into(),
                        ..card("https://x/i", "https://x/l")
                    },
                    0,
                )
                .unwrap();
        }
        for i in 0..PRODUCT_CLICKERS_MAX {
            let id = if i % 2 == 0 { "a" } else { "b" };
            assert_eq!(
                products.click(id, &format!("u{}", i / 2)),
                Ok(ClickOutcome::Counted)
            );
        }
        let refused = products.click("a", "one-more").unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooMany);
        assert_eq!(
            products.click("a", "u0"),
            Ok(ClickOutcome::Repeat),
            "a repeat is still answered"
        );
        assert_eq!(
            products.click("nope", "u0").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            products.clicks["a"] + products.clicks["b"],
            PRODUCT_CLICKERS_MAX as u64
        );
    }

    #[test]
    fn urls_with_an_empty_authority_are_refused() {
        let fine = "https://shop.example/item";
        for url in [
            "https:///shop.example@evil.example/",
            "https:////evil.example/",
            "https:/\\evil.example/",
            "https://\\evil.example/",
        ] {
            for bad in [card(url, fine), card(fine, url)] {
                assert!(bad.validate().is_err(), "{url} accepted");
            }
        }
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        let fine = "https://shop.example/item?next=a@b#x@y";
        assert_eq!(card(fine, fine).validate(), Ok(()));
        assert_eq!(card(fine, "shop://item/42").validate(), Ok(()));
        for url in [
            "https://shop.example@evil.example/",
            "https://user:password@shop.example/item",
            "http://@shop.example/",
            "https://shop.example\\@evil.example/",
            "shop://shop.example@evil.example/item",
        ] {
            let image = url.starts_with("http");
            let cases = [("image_url", card(url, fine)), ("link", card(fine, url))];
            for (field, bad) in cases.into_iter().filter(|(f, _)| image || *f == "link") {
                let refused = bad.validate().expect_err(url);
                assert!(
                    refused.contains(field) && refused.contains("credentials"),
                    "{url}: {refused}"
                );
            }
        }
    }
}
