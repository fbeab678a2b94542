//! AdminService: organizations, modules, users, roles, profiles, groups,
//! sharing rules, shifts, Import/Export and the Watch feed.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::audit::Stamp;
use super::auth::{caller, operator, require_in, require_write, Scope};
use super::pb::admin_service_server::AdminService;
use super::{convert, pb, write};
use crate::document::parse_document;
use crate::engine::error::bounded;
use crate::engine::simulate::{at_write, MAX_WRITES};
use crate::engine::{Change, Command, Error, SimWrite, SimulateOptions, Writer};
use crate::service::{Committed, Warden};

/// The AdminService handlers.
pub struct AdminApi {
    warden: Arc<Warden>,
}

impl AdminApi {
    /// Handlers over `warden`.
    pub fn new(warden: Arc<Warden>) -> Self {
        AdminApi { warden }
    }

    async fn fresh(&self, org_id: &str, c: Option<pb::Consistency>) -> Result<(), Status> {
        // A malformed id is refused before any wait for freshness.
        self.warden.engine().check_org_id(org_id)?;
        self.warden.fresh(org_id, convert::consistency(c)?).await?;
        Ok(())
    }
}

fn read_scope<T>(req: &Request<T>, org_id: &str) -> Result<(), Status> {
    require_in(req, &[Scope::Admin, Scope::Check], org_id)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(name = "CreateOrganization", skip_all, fields(method = "CreateOrganization", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn create_organization(
        &self,
        req: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        require_in(&req, &[Scope::Admin], &req.get_ref().org_id)?;
        let writer = operator(&req);
        let r = req.into_inner();
        let settings = convert::settings_from(r.settings)?;
        write(
            &self.warden,
            &r.org_id,
            writer,
            Command::CreateOrganization(settings),
        )
        .await
    }

    #[tracing::instrument(name = "GetOrganization", skip_all, fields(method = "GetOrganization", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (s, rev) = self.warden.engine().summary(&r.org_id)?;
        Ok(Response::new(pb::GetOrganizationResponse {
            org_id: r.org_id,
            settings: Some(convert::settings(&s.settings)),
            revision: convert::revision(rev),
            user_count: s.users as u64,
            role_count: s.roles as u64,
            group_count: s.groups as u64,
            module_count: s.modules as u64,
            record_count: s.records as u64,
        }))
    }

    #[tracing::instrument(name = "UpdateSettings", skip_all, fields(method = "UpdateSettings", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::update_settings_command(r)?;
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "DeleteOrganization", skip_all, fields(method = "DeleteOrganization", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_organization(
        &self,
        req: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        write(&self.warden, &r.org_id, writer, Command::DeleteOrganization).await
    }

    #[tracing::instrument(
        name = "ListOrganizations",
        skip_all,
        fields(method = "ListOrganizations")
    )]
    async fn list_organizations(
        &self,
        req: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let c = caller(&req);
        c.require(&[Scope::Admin, Scope::Check])?;
        let r = req.into_inner();
        let organizations = self
            .warden
            .engine()
            .list_organizations(&r.principal)
            .into_iter()
            .filter(|(org_id, _)| c.may_use_org(org_id))
            .map(|(org_id, user_id)| pb::OrganizationRef { org_id, user_id })
            .collect();
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations,
        }))
    }

    #[tracing::instrument(name = "PutModule", skip_all, fields(method = "PutModule", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_module(
        &self,
        req: Request<pb::PutModuleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::module_from(r.module)?;
        write(&self.warden, &r.org_id, writer, Command::PutModule(def)).await
    }

    #[tracing::instrument(name = "DeleteModule", skip_all, fields(method = "DeleteModule", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_module(
        &self,
        req: Request<pb::DeleteModuleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_module_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "PutUser", skip_all, fields(method = "PutUser", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_user(
        &self,
        req: Request<pb::PutUserRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::user_from(r.user)?;
        write(&self.warden, &r.org_id, writer, Command::PutUser(def)).await
    }

    #[tracing::instrument(name = "GetUser", skip_all, fields(method = "GetUser", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (view, rev) = self.warden.engine().user_view(&r.org_id, &r.user_id)?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(convert::user(&view.user)),
            groups: view.groups,
            effective_profile_ids: view.effective_profiles,
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "ListUsers", skip_all, fields(method = "ListUsers", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (users, rev) = self.warden.engine().users(&r.org_id)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(convert::user).collect(),
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "DeleteUser", skip_all, fields(method = "DeleteUser", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_user_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "PutRole", skip_all, fields(method = "PutRole", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_role(
        &self,
        req: Request<pb::PutRoleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::role_from(r.role)?;
        write(&self.warden, &r.org_id, writer, Command::PutRole(def)).await
    }

    #[tracing::instrument(name = "ListRoles", skip_all, fields(method = "ListRoles", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_roles(
        &self,
        req: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (roles, rev) = self.warden.engine().roles(&r.org_id)?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles.iter().map(convert::role).collect(),
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "DeleteRole", skip_all, fields(method = "DeleteRole", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_role_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "PutProfile", skip_all, fields(method = "PutProfile", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_profile(
        &self,
        req: Request<pb::PutProfileRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::profile_from(r.profile)?;
        write(&self.warden, &r.org_id, writer, Command::PutProfile(def)).await
    }

    #[tracing::instrument(name = "DeleteProfile", skip_all, fields(method = "DeleteProfile", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_profile(
        &self,
        req: Request<pb::DeleteProfileRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_profile_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "PutGroup", skip_all, fields(method = "PutGroup", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_group(
        &self,
        req: Request<pb::PutGroupRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::group_from(r.group)?;
        write(&self.warden, &r.org_id, writer, Command::PutGroup(def)).await
    }

    #[tracing::instrument(name = "GetGroup", skip_all, fields(method = "GetGroup", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn get_group(
        &self,
        req: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::GetGroupResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (view, rev) = self.warden.engine().group_view(&r.org_id, &r.group_id)?;
        Ok(Response::new(pb::GetGroupResponse {
            group: Some(convert::group(&view.group)),
            members: view.members,
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "ListGroups", skip_all, fields(method = "ListGroups", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_groups(
        &self,
        req: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (groups, rev) = self.warden.engine().groups(&r.org_id)?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.iter().map(convert::group).collect(),
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "DeleteGroup", skip_all, fields(method = "DeleteGroup", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_group(
        &self,
        req: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_group_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "PutSharingRule", skip_all, fields(method = "PutSharingRule", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_sharing_rule(
        &self,
        req: Request<pb::PutSharingRuleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::rule_from(r.rule)?;
        write(
            &self.warden,
            &r.org_id,
            writer,
            Command::PutSharingRule(def),
        )
        .await
    }

    #[tracing::instrument(name = "DeleteSharingRule", skip_all, fields(method = "DeleteSharingRule", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_sharing_rule(
        &self,
        req: Request<pb::DeleteSharingRuleRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        write(
            &self.warden,
            &r.org_id,
            writer,
            Command::DeleteSharingRule(r.rule_id),
        )
        .await
    }

    #[tracing::instrument(name = "ListSharingRules", skip_all, fields(method = "ListSharingRules", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_sharing_rules(
        &self,
        req: Request<pb::ListSharingRulesRequest>,
    ) -> Result<Response<pb::ListSharingRulesResponse>, Status> {
        read_scope(&req, &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (rules, rev) = self.warden.engine().sharing_rules(&r.org_id)?;
        Ok(Response::new(pb::ListSharingRulesResponse {
            rules: rules.iter().map(convert::rule).collect(),
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "PutShift", skip_all, fields(method = "PutShift", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn put_shift(
        &self,
        req: Request<pb::PutShiftRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let def = convert::shift_from(r.shift)?;
        write(&self.warden, &r.org_id, writer, Command::PutShift(def)).await
    }

    #[tracing::instrument(name = "DeleteShift", skip_all, fields(method = "DeleteShift", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty))]
    async fn delete_shift(
        &self,
        req: Request<pb::DeleteShiftRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let org_id = r.org_id.clone();
        let command = convert::delete_shift_command(r);
        write(&self.warden, &org_id, writer, command).await
    }

    #[tracing::instrument(name = "Export", skip_all, fields(method = "Export", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        require_in(&req, &[Scope::Admin], &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, r.consistency).await?;
        let (doc, rev) = self.warden.engine().export(&r.org_id)?;
        let document = match r.format.as_str() {
            "" | "json" => {
                serde_json::to_string_pretty(&doc).map_err(|e| Status::internal(e.to_string()))?
            }
            // Through a JSON value, so owners and grantees come out as
            // `{user: id}` maps (as documents write them), not YAML tags.
            "yaml" => serde_json::to_value(&doc)
                .map_err(|e| Status::internal(e.to_string()))
                .and_then(|v| {
                    serde_yaml_ng::to_string(&v).map_err(|e| Status::internal(e.to_string()))
                })?,
            other => {
                return Err(Status::invalid_argument(format!(
                    "format: \"json\" or \"yaml\", got {:?}",
                    bounded(other)
                )))
            }
        };
        Ok(Response::new(pb::ExportResponse {
            document,
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "Import", skip_all, fields(method = "Import", org = %crate::engine::error::bounded(&req.get_ref().org_id), revision = tracing::field::Empty, replace = req.get_ref().replace))]
    async fn import(
        &self,
        req: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        // Cheap refusals first: the credential's scope and organization,
        // the size, and the actor, all before the document is parsed.
        // An organization-limited token must name
        // the organization here, so that it is checked before the document
        // is parsed (the document's own `organization` is known only after).
        if req.get_ref().org_id.is_empty() && caller(&req).is_org_limited() {
            return Err(Status::permission_denied(
                "org_id: this credential is limited to organizations; name the organization in org_id",
            ));
        }
        let writer = require_write(&req, &req.get_ref().org_id, &req.get_ref().actor)?;
        let r = req.into_inner();
        let limit = self.warden.options().max_document_bytes;
        if r.document.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "document: {} bytes exceed the limit of {limit} bytes (--max-document-bytes)",
                r.document.len()
            )));
        }
        if matches!(writer.writer, Writer::Actor { .. }) {
            if r.org_id.is_empty() {
                return Err(Error::invalid(
                    "org_id",
                    "required when an actor is named (the actor is authorized before the document is read)",
                )
                .into());
            }
            self.warden.precheck_import(&r.org_id, &writer.writer)?;
        }
        let text = r.document;
        let document = tokio::task::spawn_blocking(move || parse_document(&text))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the document parser failed");
                Status::internal("the document could not be parsed; nothing was changed")
            })??;
        let org_id = match (r.org_id.is_empty(), document.organization.is_empty()) {
            (true, true) => {
                return Err(Error::invalid(
                    "org_id",
                    "name the organization here or in the document",
                )
                .into())
            }
            (true, false) => document.organization.clone(),
            (false, _) => r.org_id.clone(),
        };
        let command = Command::Import {
            document,
            replace: r.replace,
        };
        crate::memory::handing_back(write(&self.warden, &org_id, writer, command)).await
    }

    #[tracing::instrument(name = "ListChanges", skip_all, fields(method = "ListChanges", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn list_changes(
        &self,
        req: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ListChangesResponse>, Status> {
        require_in(&req, &[Scope::Admin], &req.get_ref().org_id)?;
        super::audit::list_changes(&self.warden, req.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(name = "Simulate", skip_all, fields(method = "Simulate", org = %crate::engine::error::bounded(&req.get_ref().org_id), writes = req.get_ref().writes.len()))]
    async fn simulate(
        &self,
        req: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        // The bound runs from the call's arrival; dropping the call (its
        // client gone, its time bound hit) stops the work too.
        let bound = self.warden.simulate_bound();
        let _cancel = bound.cancel_on_drop();
        let org_id = req.get_ref().org_id.clone();
        self.warden.engine().check_org_id(&org_id)?;
        // Sizes and credentials before any write is converted: each write
        // needs what its own RPC needs.
        let count = req.get_ref().writes.len();
        if count > MAX_WRITES {
            return Err(Error::invalid(
                "writes",
                format!("{count} writes exceed the limit of {MAX_WRITES} per simulation"),
            )
            .into());
        }
        let limit = self.warden.options().max_document_bytes;
        let mut writers = Vec::with_capacity(count);
        for (i, w) in req.get_ref().writes.iter().enumerate() {
            let (own_org, actor, admin_only) = convert::write_header(w).ok_or_else(|| {
                Error::invalid(
                    format!("writes[{i}]"),
                    "name one write, after its RPC: put_sharing_rule, delete_group, set_owner, share, …",
                )
            })?;
            if !own_org.is_empty() && own_org != org_id {
                return Err(Error::invalid(
                    format!("writes[{i}].org_id"),
                    format!(
                        "'{}' is not the simulated organization '{}'",
                        bounded(own_org),
                        bounded(&org_id)
                    ),
                )
                .into());
            }
            if let Some(pb::write::Write::Import(r)) = &w.write {
                if r.document.len() > limit {
                    return Err(Status::resource_exhausted(format!(
                        "writes[{i}].import.document: {} bytes exceed the limit of {limit} bytes (--max-document-bytes)",
                        r.document.len()
                    )));
                }
            }
            let writer = if admin_only {
                require_in(&req, &[Scope::Admin], &org_id)?;
                Writer::Operator
            } else {
                require_write(&req, &org_id, actor)?.writer
            };
            writers.push(writer);
        }
        let r = req.into_inner();
        // Simulated on the latest state, as the real writes would be.
        self.warden
            .fresh(&org_id, crate::service::Consistency::FullyConsistent)
            .await?;
        let warden = self.warden.clone();
        // Conversion (a document to parse) and the comparison take time:
        // off the runtime's workers.
        let simulation = tokio::task::spawn_blocking(move || {
            let mut writes = Vec::with_capacity(count);
            for (i, (w, writer)) in r.writes.into_iter().zip(writers).enumerate() {
                let command = convert::write_from(w).map_err(|e| at_write(i, e))?.command;
                writes.push(SimWrite { writer, command });
            }
            let options = SimulateOptions {
                actions: r.actions,
                sample_size: r.sample_size as usize,
            };
            warden
                .simulate(&r.org_id, &writes, &options, &bound)
                .map_err(Status::from)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the simulation failed");
            Status::internal("the simulation failed; nothing was changed")
        })??;
        Ok(Response::new(convert::simulation(&simulation)))
    }

    type WatchStream = WatchStream;

    #[tracing::instrument(name = "Watch", skip_all, fields(method = "Watch", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        require_in(&req, &[Scope::Admin], &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.warden.engine().check_org_id(&r.org_id)?;
        // An organization this replica has not seen yet may exist in the
        // store; one that exists nowhere is NOT_FOUND rather than a feed of
        // checkpoints at revision 0 forever.
        if self.warden.engine().revision(&r.org_id).is_none() {
            self.warden.catch_up(&r.org_id).await?;
        }
        let engine_rev = self
            .warden
            .engine()
            .revision(&r.org_id)
            .ok_or_else(|| Error::not_found("organization", r.org_id.as_str(), "org_id"))?;
        let after = if r.after_revision.is_empty() {
            engine_rev
        } else {
            convert::parse_revision("after_revision", &r.after_revision)?
        };
        let every = Duration::from_secs(u64::from(if r.checkpoint_seconds == 0 {
            10
        } else {
            r.checkpoint_seconds
        }));
        let live = self.warden.subscribe();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(watch_loop(
            self.warden.clone(),
            r.org_id,
            after,
            every,
            live,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

pub(crate) fn change_events(
    revision: u64,
    changes: &[Change],
    stamp: &Stamp,
) -> Vec<pb::WatchResponse> {
    changes
        .iter()
        .map(|c| pb::WatchResponse {
            event: Some(pb::watch_response::Event::Change(pb::ChangeEvent {
                actor: stamp.actor.clone(),
                time: stamp.time,
                revision: convert::revision(revision),
                kind: c.kind().to_string(),
                id: c.entity_id(),
                deleted: c.is_delete(),
                body: if c.is_delete() {
                    String::new()
                } else {
                    serde_json::to_value(c)
                        .ok()
                        .and_then(|mut v| {
                            v.as_object_mut().map(|o| {
                                o.remove("op");
                                serde_json::Value::Object(o.clone())
                            })
                        })
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                },
            })),
        })
        .collect()
}

/// A write too large for the log: one event telling the watcher to re-read the organization.
pub(crate) fn reload_event(revision: u64, stamp: &Stamp) -> pb::WatchResponse {
    pb::WatchResponse {
        event: Some(pb::watch_response::Event::Change(pb::ChangeEvent {
            actor: stamp.actor.clone(),
            time: stamp.time,
            revision: convert::revision(revision),
            kind: "organization".into(),
            id: String::new(),
            deleted: false,
            body: String::new(),
        })),
    }
}

/// Sends the log after `after`, then every live write, with checkpoints,
/// until the client goes away.
async fn watch_loop(
    warden: Arc<Warden>,
    org_id: String,
    mut after: u64,
    every: Duration,
    mut live: broadcast::Receiver<Arc<Committed>>,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
) {
    async fn backlog(
        warden: &Warden,
        org_id: &str,
        after: &mut u64,
        tx: &mpsc::Sender<Result<pb::WatchResponse, Status>>,
    ) -> bool {
        match warden.store().changes_since(org_id, *after).await {
            Ok(entries) => {
                for e in entries {
                    let stamp = Stamp::of(e.actor.as_deref(), e.at);
                    let events = match &e.changes {
                        Some(c) => change_events(e.revision, c, &stamp),
                        None => vec![reload_event(e.revision, &stamp)],
                    };
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return false;
                        }
                    }
                    *after = e.revision;
                }
                true
            }
            Err(e) => {
                let _ = tx
                    .send(Err(crate::service::ServiceError::from(e).into()))
                    .await;
                false
            }
        }
    }
    if !backlog(&warden, &org_id, &mut after, &tx).await {
        return;
    }
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            msg = live.recv() => match msg {
                Ok(c) if c.org_id == org_id && c.revision > after => {
                    // A write learnt from elsewhere carries no audit: the
                    // store's log has it.
                    let from_log = c.revision > after + 1 || c.audit.is_none();
                    if from_log && !backlog(&warden, &org_id, &mut after, &tx).await {
                        return;
                    }
                    if c.revision <= after {
                        continue;
                    }
                    let stamp = c.audit.as_ref().map_or_else(Stamp::default, |a| Stamp::of(Some(&a.actor), Some(a.at)));
                    let events = match &c.changes {
                        Some(changes) => change_events(c.revision, changes, &stamp),
                        None => vec![reload_event(c.revision, &stamp)],
                    };
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    after = c.revision;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !backlog(&warden, &org_id, &mut after, &tx).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick() => {
                let rev = warden.engine().revision(&org_id).unwrap_or(after);
                let cp = pb::WatchResponse {
                    event: Some(pb::watch_response::Event::Checkpoint(pb::Checkpoint { revision: convert::revision(rev) })),
                };
                if tx.send(Ok(cp)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}
