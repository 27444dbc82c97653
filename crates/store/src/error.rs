/// What went wrong in the store, shaped by what the caller does next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached right now (connection, pool, I/O, lock contention, serialization failure).
    /// Retry with backoff; a webhook answers 503 so the platform delivers again.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The write conflicts with what is stored (a unique key refused it).
    #[error("the write conflicts with stored data: {0}")]
    Conflict(String),
    /// The database refused the data itself (a value it cannot hold, a constraint the data breaks). The input is
    /// bad, not the store: isolate it (log it, drop it, mark it) and carry on with the rest.
    #[error("the database refused this data; retrying will not help — fix or drop the input: {0}")]
    Refused(String),
    /// The caller passed a value the store cannot take (e.g. an empty ID).
    #[error("invalid input to the store: {0}")]
    Invalid(String),
    /// Stored data cannot be decoded into domain types.
    #[error("stored data cannot be decoded: {0}")]
    Corrupt(String),
    /// The schema migrations could not be applied.
    #[error("cannot apply the store's migrations: {0}")]
    Migration(String),
    /// The database refused a statement for another reason; retrying will not help.
    #[error("the database refused a statement: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_outage_is_worth_retrying() {
        assert!(StoreError::Unavailable("down".into()).is_retryable());
        for e in [
            StoreError::Conflict("dup".into()),
            StoreError::Refused("NUL".into()),
            StoreError::Invalid("empty".into()),
            StoreError::Corrupt("bad".into()),
            StoreError::Migration("m".into()),
            StoreError::Backend("b".into()),
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }
}
