//! GrantService: record ownership and manual shares.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{require_in, require_write, Scope};
use super::pb::grant_service_server::GrantService;
use super::{convert, pb, write};
use crate::engine::{Command, Result};
use crate::service::Warden;

/// The GrantService handlers.
pub struct GrantApi {
    warden: Arc<Warden>,
}

impl GrantApi {
    /// Handlers over `warden`.
    pub fn new(warden: Arc<Warden>) -> Self {
        GrantApi { warden }
    }
}

#[tonic::async_trait]
impl GrantService for GrantApi {
    #[tracing::instrument(name = "SetOwner", skip_all, fields(method = "SetOwner", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn set_owner(
        &self,
        req: Request<pb::SetOwnerRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org = r.org_id.clone();
        let record = convert::record_from(r)?;
        write(&self.warden, &org, writer, Command::SetOwner(record)).await
    }

    #[tracing::instrument(name = "DeleteRecord", skip_all, fields(method = "DeleteRecord", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_record(
        &self,
        req: Request<pb::DeleteRecordRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_record_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "Share", skip_all, fields(method = "Share", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty, shares = req.get_ref().shares.len()))]
    async fn share(
        &self,
        req: Request<pb::ShareRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let command = Command::Share(convert::shares_from(r.shares, true)?);
        write(&self.warden, &r.org_id, writer, command).await
    }

    #[tracing::instrument(name = "Unshare", skip_all, fields(method = "Unshare", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty, shares = req.get_ref().shares.len()))]
    async fn unshare(
        &self,
        req: Request<pb::UnshareRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let command = Command::Unshare(convert::shares_from(r.shares, false)?);
        write(&self.warden, &r.org_id, writer, command).await
    }

    #[tracing::instrument(name = "ListShares", skip_all, fields(method = "ListShares", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_shares(
        &self,
        req: Request<pb::ListSharesRequest>,
    ) -> Result<Response<pb::ListSharesResponse>, Status> {
        require_in(
            &req,
            &[Scope::Grant, Scope::Admin, Scope::Check],
            &req.get_ref().org_id,
        )?;
        let r = req.into_inner();
        self.warden.engine().check_org_id(&r.org_id)?;
        self.warden
            .fresh(&r.org_id, convert::consistency(r.consistency)?)
            .await?;
        let (list, rev) = self
            .warden
            .engine()
            .shares(&r.org_id, &r.module, &r.record_id)?;
        Ok(Response::new(pb::ListSharesResponse {
            shares: list.iter().map(convert::share).collect(),
            revision: convert::revision(rev),
        }))
    }
}
