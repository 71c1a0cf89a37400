//! Fresh PostgreSQL databases, one per shard, for tests and benchmarks on the machine's
//! server. Not used by the service itself.

use crate::StoreError;

/// The maintenance database of the local server (trust auth, user postgres).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn url_of(name: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

async fn admin() -> Result<sqlx::AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    Ok(sqlx::AnyPool::connect(POSTGRES_ADMIN_URL).await?)
}

/// Drops and creates `<prefix>_0 … <prefix>_{count-1}`; returns their URLs.
pub async fn fresh_databases(prefix: &str, count: u16) -> Result<Vec<String>, StoreError> {
    // CREATE DATABASE copies template1, which refuses concurrent copies: one at a time.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _creating = CREATING.lock().await;
    let admin = admin().await?;
    let mut urls = Vec::with_capacity(usize::from(count));
    for k in 0..count {
        let name = format!("{prefix}_{k}");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        urls.push(url_of(&name));
    }
    Ok(urls)
}

/// Drops every database whose name starts with `prefix`, except those starting with
/// `keep` (databases still in use by this process).
pub async fn drop_databases(prefix: &str, keep: Option<&str>) -> Result<(), StoreError> {
    let admin = admin().await?;
    let rows = sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_all(&admin)
        .await?;
    for row in rows {
        let name: String = sqlx::Row::get(&row, 0);
        if !keep.is_some_and(|keep| name.starts_with(keep)) {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await?;
        }
    }
    Ok(())
}
