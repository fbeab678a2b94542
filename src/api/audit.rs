//! AdminService/ListChanges: the change audit read back page by page, each
//! write with its actor, time and changes as Watch streams them.

use chrono::{DateTime, Utc};
use tonic::Status;

use super::admin::{change_events, reload_event};
use super::{convert, pb};
use crate::engine::Error;
use crate::service::Warden;

/// Entries per page when the request asks for none.
const DEFAULT_PAGE: u32 = 100;
/// The most entries one page holds.
const MAX_PAGE: u32 = 1000;
/// Page tokens name the last revision listed behind this prefix, so that a
/// token from elsewhere is told from one this server issued.
const TOKEN_PREFIX: &str = "changes-after:";

/// Who made a write and when, as events carry it.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    /// The actor ("" when not recorded).
    pub actor: String,
    /// The commit time (unset when not recorded).
    pub time: Option<prost_types::Timestamp>,
}

impl Stamp {
    /// The stamp of a log entry or a committed write.
    pub fn of(actor: Option<&str>, at: Option<DateTime<Utc>>) -> Stamp {
        Stamp {
            actor: actor.unwrap_or_default().to_string(),
            time: at.map(convert::timestamp),
        }
    }
}

/// One page of the change audit of `r.org_id`, oldest first.
pub async fn list_changes(
    warden: &Warden,
    r: pb::ListChangesRequest,
) -> Result<pb::ListChangesResponse, Status> {
    warden.engine().check_org_id(&r.org_id)?;
    if warden.engine().revision(&r.org_id).is_none() {
        // Another replica may have created it.
        warden.catch_up(&r.org_id).await?;
    }
    if warden.engine().revision(&r.org_id).is_none() {
        return Err(Error::not_found("organization", r.org_id.as_str(), "org_id").into());
    }
    let page_size = match r.page_size {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(Error::invalid("page_size", format!("at most {MAX_PAGE}")).into())
        }
        n => n,
    };
    let after = if !r.page_token.is_empty() {
        r.page_token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rev| rev.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::invalid("page_token", "not a token of a previous ListChanges page")
            })?
    } else if r.from_revision.is_empty() {
        0
    } else {
        convert::parse_revision("from_revision", &r.from_revision)?.saturating_sub(1)
    };
    // One more than the page: whether another page follows.
    let mut entries = warden
        .store()
        .changes_page(&r.org_id, after, u64::from(page_size) + 1)
        .await
        .map_err(crate::service::ServiceError::from)?;
    let more = entries.len() > page_size as usize;
    entries.truncate(page_size as usize);
    let next_page_token = match (more, entries.last()) {
        (true, Some(last)) => format!("{TOKEN_PREFIX}{}", last.revision),
        _ => String::new(),
    };
    let entries = entries
        .into_iter()
        .map(|e| {
            let stamp = Stamp::of(e.actor.as_deref(), e.at);
            let events = match &e.changes {
                Some(changes) => change_events(e.revision, changes, &stamp),
                None => vec![reload_event(e.revision, &stamp)],
            };
            pb::ChangeEntry {
                revision: convert::revision(e.revision),
                actor: stamp.actor,
                time: stamp.time,
                changes: events
                    .into_iter()
                    .filter_map(|w| match w.event {
                        Some(pb::watch_response::Event::Change(c)) => Some(c),
                        _ => None,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(pb::ListChangesResponse {
        entries,
        next_page_token,
    })
}
