//! Maps service errors to gRPC status codes (SPEC section 6). Internal
//! details go to the log; the client gets the field and the rule.

use tonic::Status;
use tracing::error;

use crate::engine::error::bounded_message;
use crate::engine::Error;
use crate::service::ServiceError;
use crate::store::StoreError;

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Engine(e) => engine_status(e),
            ServiceError::Store(StoreError::Conflict { current }) => Status::aborted(format!(
                "the organization changed concurrently (store at revision {current}); retry"
            )),
            ServiceError::Store(StoreError::Backend(detail)) => {
                error!(%detail, "store failure");
                Status::unavailable("the store is unavailable; nothing was changed")
            }
            ServiceError::DeadlineExceeded(m) => Status::deadline_exceeded(bounded_message(&m)),
            ServiceError::Aborted(m) => Status::aborted(bounded_message(&m)),
            ServiceError::Unauthenticated(m) => Status::unauthenticated(bounded_message(&m)),
            ServiceError::MissingScope(m) => Status::permission_denied(bounded_message(&m)),
            ServiceError::CursorExpired(m) => Status::failed_precondition(bounded_message(&m)),
        }
    }
}

/// The status of an engine error.
pub fn engine_status(e: Error) -> Status {
    let message = bounded_message(&e.to_string()).into_owned();
    match e {
        Error::InvalidArgument { .. } => Status::invalid_argument(message),
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::FailedPrecondition(_) => Status::failed_precondition(message),
        Error::PermissionDenied(_) => Status::permission_denied(message),
    }
}

/// Shorthand for handlers: an engine error as a status.
pub fn from_engine(e: Error) -> Status {
    engine_status(e)
}
