pub const DOCUMENT: &str = include_str!("../openapi.json");
