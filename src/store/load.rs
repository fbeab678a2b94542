//! The one streamed load of the SQL stores: every live organization (or
//! one) read from one snapshot, each compiled as its rows arrive — the
//! small kinds into a document first, then each module's records and
//! shares in chunks of [`rows::LOAD_CHUNK`], each body applied as soon as it
//! is decoded. What differs between SQLite and PostgreSQL (the snapshot's
//! isolation, generations, the SQL that joins a chunk's bodies) is behind
//! [`Dialect`]'s load methods; the walk itself is written once, here.

use super::commit::{to_revision, Dialect};
use super::rows::{self, ChunkKey, DocumentBuilder};
use super::{LoadedState, StoreResult};
use crate::engine::document::StateBuilder;
use crate::engine::OrgState;

/// A live organization as a load finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LiveOrg {
    /// Its id.
    pub org_id: String,
    /// Its revision, as stored.
    pub revision: i64,
    /// The generation its rows are filed under (always 0 in SQLite).
    pub generation: i64,
}

impl From<(String, i64, i64)> for LiveOrg {
    /// A row of id, revision and generation.
    fn from((org_id, revision, generation): (String, i64, i64)) -> Self {
        LiveOrg {
            org_id,
            revision,
            generation,
        }
    }
}

/// One chunk of a module's records or shares.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    /// The bodies, JSON texts joined by newlines (`None`: no rows).
    pub bodies: Option<String>,
    /// How many rows.
    pub count: i64,
    /// The last row's key, as [`ChunkKey::parse`] reads it.
    pub last: Option<String>,
}

/// A chunk's row as both dialects select it: bodies, count, last key.
pub(super) type ChunkRow = (Option<String>, i64, Option<String>);

impl From<ChunkRow> for Chunk {
    fn from((bodies, count, last): ChunkRow) -> Self {
        Chunk {
            bodies,
            count,
            last,
        }
    }
}

/// Every live organization, compiled as its rows stream in, read from one
/// snapshot.
pub(super) async fn load_all_states<D: Dialect>(dialect: &D) -> StoreResult<Vec<LoadedState>> {
    load(dialect, None).await
}

/// One live organization, compiled as its rows stream in, if it exists,
/// read from one snapshot.
pub(super) async fn load_org_state<D: Dialect>(
    dialect: &D,
    org_id: &str,
) -> StoreResult<Option<LoadedState>> {
    Ok(load(dialect, Some(org_id)).await?.pop())
}

async fn load<D: Dialect>(dialect: &D, only: Option<&str>) -> StoreResult<Vec<LoadedState>> {
    let op = if only.is_some() {
        "load organization"
    } else {
        "load organizations"
    };
    let mut snapshot = dialect.begin_snapshot().await?;
    let orgs = dialect.live_orgs(&mut snapshot, only).await?;
    let mut out = Vec::with_capacity(orgs.len());
    for org in orgs {
        let revision = to_revision(org.revision, op)?;
        out.push(LoadedState {
            revision,
            state: load_state(dialect, &mut snapshot, &org, revision).await?,
        });
    }
    // A snapshot that fails to end still read consistent rows; its error
    // is reported all the same, as the backends did before.
    dialect.end_snapshot(snapshot).await?;
    Ok(out)
}

/// Reads one organization's rows straight into its compiled state.
async fn load_state<D: Dialect>(
    dialect: &D,
    snapshot: &mut D::Snapshot,
    org: &LiveOrg,
    revision: u64,
) -> StoreResult<OrgState> {
    let mut small = DocumentBuilder::new(&org.org_id);
    dialect.load_small(snapshot, org, &mut small).await?;
    let small = small.finish();
    let modules: Vec<String> = small.modules.iter().map(|m| m.id.clone()).collect();
    let mut builder = StateBuilder::new(small, revision);
    for kind in rows::STREAMED {
        for module in &modules {
            let mut chunk = dialect
                .load_chunk(snapshot, org, kind, module, &ChunkKey::default())
                .await?;
            loop {
                let decode = |builder: &mut StateBuilder, chunk: &Chunk| match &chunk.bodies {
                    Some(bodies) => rows::load_chunk(builder, kind, bodies).map(|_| ()),
                    None => Ok(()),
                };
                let after = match &chunk.last {
                    Some(last) if chunk.count == rows::LOAD_CHUNK => ChunkKey::parse(last)?,
                    _ => {
                        decode(&mut builder, &chunk)?;
                        break;
                    }
                };
                // The next chunk is read while this one is decoded: the
                // database (SQLite's worker thread, or PostgreSQL's server)
                // works on the other core meanwhile, instead of each side
                // waiting for the other (a third of a start-up's
                // instructions are SQLite's, most of the rest decoding).
                // The fetch is polled first, so its statement is on its way
                // before the decode takes this thread.
                let fetch = dialect.load_chunk(snapshot, org, kind, module, &after);
                let decoded = async { decode(&mut builder, &chunk) };
                let (next, decoded) = tokio::join!(fetch, decoded);
                decoded?;
                chunk = next?;
            }
        }
    }
    Ok(builder.finish())
}
