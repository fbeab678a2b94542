//! The one streamed load of the SQL stores: every live organization (or
//! one) read from one snapshot, each compiled as its rows arrive — the
//! small kinds into a document first, then each module's records and
//! shares in chunks of [`rows::LOAD_CHUNK`], read, decoded and applied in
//! a pipeline (the database reads the next chunk while a blocking thread
//! decodes the one before and the runtime thread applies the one before
//! that). What differs between SQLite and PostgreSQL (the snapshot's
//! isolation, generations, the SQL that joins a chunk's bodies) is behind
//! [`Dialect`]'s load methods; the walk itself is written once, here.

use std::collections::VecDeque;

use super::commit::{to_revision, Dialect};
use super::rows::{self, ChunkKey, ChunkOrigin, Decoded, DocumentBuilder};
use super::{LoadedState, StoreError, StoreResult};
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

/// Chunks decoded ahead of the one being applied: enough that the decoding
/// thread always has the next chunk while the runtime thread applies one,
/// few enough that a start-up's peak stays near its steady state (a chunk
/// is ≈ 1 MB of text, a few MB decoded).
const DECODE_AHEAD: usize = 2;

/// Rows applied between two [`crate::memory::hand_back`]s during a load
/// (one full chunk). Each applied chunk frees its text and decoded rows
/// (a few MB), which mimalloc purges only a second later: over a start-up
/// of crm-large that freed-but-resident memory was the peak's excess over
/// the steady state (226 against 163 MiB). Handing it back after each
/// chunk's worth keeps it to the chunks in flight, for one walk of the
/// runtime thread's pages each (under a million instructions at 1×).
/// Counted in rows, not chunks: an organization smaller than this (ten
/// thousand small tenants) pays no walk at all (docs/benchmarks.md,
/// "Part G (fourth round)").
const HAND_BACK_ROWS: usize = rows::LOAD_CHUNK as usize;

/// Chunks smaller than this are decoded where they arrive: handing them to
/// another thread would cost more than decoding them (an organization of
/// a few hundred rows per module, times ten thousand tenants).
const DECODE_ASIDE_FROM: i64 = 1_024;

/// Organizations with fewer roles, users and groups than this compile
/// their small kinds where they are read rather than on a blocking thread.
const COMPILE_ASIDE_FROM: usize = 1_024;

/// A chunk on its way from the database to the state: decoded here, or
/// being decoded on a blocking thread.
enum Pending {
    Here(StoreResult<Decoded>),
    Aside(tokio::task::JoinHandle<StoreResult<Decoded>>),
}

impl Pending {
    /// Starts decoding a fetched chunk.
    fn start(origin: ChunkOrigin, chunk: Chunk) -> Pending {
        let Some(bodies) = chunk.bodies else {
            return Pending::Here(Ok(Decoded::Records(Vec::new())));
        };
        if chunk.count < DECODE_ASIDE_FROM {
            return Pending::Here(rows::decode_chunk(&origin, &bodies, chunk.count));
        }
        Pending::Aside(tokio::task::spawn_blocking(move || {
            rows::decode_chunk(&origin, &bodies, chunk.count)
        }))
    }

    /// The decoded chunk, once it is.
    async fn decoded(self) -> StoreResult<Decoded> {
        match self {
            Pending::Here(decoded) => decoded,
            Pending::Aside(handle) => handle.await.map_err(|e| {
                StoreError::Backend(format!("load: the thread decoding rows failed: {e}"))
            })?,
        }
    }
}

/// Reads one organization's rows straight into its compiled state, in
/// three stages that overlap: the database reads the next chunk (SQLite's
/// worker thread, or PostgreSQL's server), a blocking thread decodes the
/// chunks read, and this thread applies the decoded chunks to the state,
/// oldest first. The rows are applied in the order a serial walk applies
/// them (modules in order, records before shares, each in key order), so
/// the state is the same; the first row that does not decode, in that
/// order, fails the load.
async fn load_state<D: Dialect>(
    dialect: &D,
    snapshot: &mut D::Snapshot,
    org: &LiveOrg,
    revision: u64,
) -> StoreResult<OrgState> {
    let mut small = DocumentBuilder::new(&org.org_id);
    dialect.load_small(snapshot, org, &mut small).await?;
    let small = small.finish();
    // Every (kind, module) the walk reads, in the order it applies them.
    let steps: Vec<(&'static str, String)> = rows::STREAMED
        .into_iter()
        .flat_map(|kind| small.modules.iter().map(move |m| (kind, m.id.clone())))
        .collect();
    // The small kinds are compiled on a blocking thread too (a tenth of a
    // start-up's instructions at crm-large's size): meanwhile this thread
    // reads the first chunks and hands them to be decoded. The first apply
    // waits for it.
    // A small organization's (ten thousand tenants') is compiled here: the
    // hand-off would cost more than it saves.
    let entities = small.roles.len() + small.users.len() + small.groups.len();
    let (mut builder, mut building) = if entities < COMPILE_ASIDE_FROM {
        (Some(StateBuilder::new(small, revision)), None)
    } else {
        let building = tokio::task::spawn_blocking(move || StateBuilder::new(small, revision));
        (None, Some(building))
    };
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(DECODE_AHEAD + 1);
    // Rows of this organization applied since the last hand-back.
    let mut applied_rows = 0usize;
    // The next chunk to read: its step, and the key it starts after.
    let mut next: Option<(usize, ChunkKey)> = (!steps.is_empty()).then(|| (0, ChunkKey::default()));
    while next.is_some() || !pending.is_empty() {
        // The oldest chunk is applied once enough are decoding behind it,
        // or when nothing is left to read.
        let apply_oldest = pending.len() >= DECODE_AHEAD || next.is_none();
        // The read is polled first, so its statement is on its way before
        // the apply takes this thread.
        let fetch = async {
            match &next {
                Some((step, after)) => {
                    let (kind, module) = &steps[*step];
                    Some(dialect.load_chunk(snapshot, org, kind, module, after).await)
                }
                None => None,
            }
        };
        let apply = async {
            if apply_oldest {
                if let Some(oldest) = pending.pop_front() {
                    let decoded = oldest.decoded().await?;
                    let rows = decoded.apply(built(&mut builder, &mut building).await?);
                    applied_rows += rows;
                    if applied_rows >= HAND_BACK_ROWS {
                        applied_rows = 0;
                        crate::memory::hand_back();
                    }
                }
            }
            Ok(())
        };
        let (fetched, applied): (_, StoreResult<()>) = tokio::join!(fetch, apply);
        // An earlier row's error comes first, as in a serial walk.
        applied?;
        let Some(chunk) = fetched else { continue };
        let chunk = chunk?;
        let Some((step, after)) = next.take() else {
            continue;
        };
        let (kind, module) = &steps[step];
        next = match &chunk.last {
            Some(last) if chunk.count == rows::LOAD_CHUNK => Some((step, ChunkKey::parse(last)?)),
            _ => (step + 1 < steps.len()).then(|| (step + 1, ChunkKey::default())),
        };
        let origin = ChunkOrigin {
            org: org.org_id.clone(),
            kind,
            module: module.clone(),
            after,
        };
        pending.push_back(Pending::start(origin, chunk));
    }
    built(&mut builder, &mut building).await?;
    let builder = builder.take().ok_or_else(no_builder)?;
    Ok(builder.finish())
}

/// The state builder, once the blocking thread compiling the small kinds
/// has handed it over.
async fn built<'b>(
    builder: &'b mut Option<StateBuilder>,
    building: &mut Option<tokio::task::JoinHandle<StateBuilder>>,
) -> StoreResult<&'b mut StateBuilder> {
    if let Some(handle) = building.take() {
        let ready = handle.await.map_err(|e| {
            StoreError::Backend(format!(
                "load: the thread compiling an organization failed: {e}"
            ))
        })?;
        *builder = Some(ready);
    }
    builder.as_mut().ok_or_else(no_builder)
}

fn no_builder() -> StoreError {
    StoreError::Backend("load: no state under construction".into())
}
