//! Errors of the service: the engine's refusals, the store's failures, and
//! the service's own (freshness deadline, lost write races, credentials).

use crate::engine;
use crate::store::StoreError;

/// Why a request failed. Never turns into an ALLOW.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The engine refused: bad input, unknown id, precondition, actor.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The requested revision was not reached in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A write kept losing races with other replicas.
    #[error("{0}")]
    Aborted(String),
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential lacks the scope the call needs.
    #[error("{0}")]
    MissingScope(String),
    /// A cursor no longer resumes (its snapshot expired and the policy moved).
    #[error("{0}")]
    CursorExpired(String),
}
