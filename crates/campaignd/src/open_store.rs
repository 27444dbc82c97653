//! Picks the store backend from the URL scheme, once.

use std::sync::Arc;

use anyhow::{Context, bail};
use store::Store;
use store_postgres::PgStore;
use store_sqlite::SqliteStore;

/// The URL schemes `open_store` accepts, for messages.
const ACCEPTED: &str = "sqlite://PATH (e.g. sqlite://campaignd.db, created if missing), sqlite::memory:, \
     postgres://USER:PASSWORD@HOST:PORT/DATABASE or postgresql://...";

/// Opens the store at `url`, choosing the backend from its scheme (`sqlite:`, `postgres:`, `postgresql:`), and
/// applies its migrations.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => {
            let store = SqliteStore::open(url).await.with_context(|| {
                format!("cannot open the SQLite store {} ([store] url)", redact(url))
            })?;
            Ok(Arc::new(store))
        }
        Some(Backend::Postgres) => {
            let store = PgStore::connect(url).await.with_context(|| {
                format!(
                    "cannot open the PostgreSQL store {} ([store] url)",
                    redact(url)
                )
            })?;
            Ok(Arc::new(store))
        }
        None => bail!(
            "unsupported store URL {} ([store] url): use {ACCEPTED}",
            redact(url)
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Option<Backend> {
        let (scheme, _) = url.split_once(':')?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

/// The store URL as it may be printed: every form of password replaced (see [`crate::config::redact_store_url`]).
pub fn redact(url: &str) -> String {
    crate::config::redact_store_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_backend_from_the_scheme() {
        assert_eq!(Backend::of("sqlite://campaignd.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("PostgreSQL://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("mysql://u@h/db"), None);
        assert_eq!(Backend::of("campaignd.db"), None);
    }

    #[test]
    fn redacts_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/campaignd"),
            "postgres://app:***@db:5432/campaignd"
        );
        assert_eq!(redact("sqlite://campaignd.db"), "sqlite://campaignd.db");
    }

    #[tokio::test]
    async fn rejects_an_unknown_scheme_naming_the_url_without_its_password() {
        let err = open_store("mysql://app:s3cret@db/x")
            .await
            .expect_err("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("mysql://app:***@db/x"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(
            msg.contains("sqlite://") && msg.contains("postgres://"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn opens_a_sqlite_file_creating_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let store = open_store(&url).await.unwrap();
        store.ping().await.unwrap();
        assert!(dir.path().join("new.db").exists());
    }
}
