//! Bearer tokens with scopes (`check`, `grant`, `admin`). With no tokens
//! configured every call is let through (a laptop or a trusted sidecar);
//! with tokens, each call needs one that carries the scope it requires.
//! Tokens never reach the logs.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Status};

use crate::engine::Writer;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// CheckService.
    Check,
    /// GrantService with an actor.
    Grant,
    /// AdminService, and any write without an actor.
    Admin,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s.trim() {
            "check" => Some(Scope::Check),
            "grant" => Some(Scope::Grant),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Grant => "grant",
            Scope::Admin => "admin",
        }
    }
}

/// The scopes of the caller, attached to each request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off.
    Anyone,
    /// A token with these scopes.
    Scoped(Vec<Scope>),
}

impl Caller {
    /// Whether the caller holds `scope` (everyone does with authentication off).
    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Scoped(have) => have.contains(&scope),
        }
    }

    /// Fails unless the caller holds one of `scopes`.
    pub fn require(&self, scopes: &[Scope]) -> Result<(), Status> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Scoped(have) if scopes.iter().any(|s| have.contains(s)) => Ok(()),
            Caller::Scoped(_) => Err(Status::permission_denied(format!(
                "the credential needs the {} scope",
                scopes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))),
        }
    }
}

/// Configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_token: Arc<HashMap<String, Vec<Scope>>>,
}

impl Tokens {
    /// Parses `TOKEN=scope+scope` entries; an error names the entry (by
    /// position, never by its text).
    pub fn parse(entries: &[String]) -> Result<Tokens, String> {
        let mut by_token = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let (token, scopes) = entry
                .split_once('=')
                .ok_or_else(|| format!("auth token #{}: expected TOKEN=scope+scope", i + 1))?;
            if token.is_empty() {
                return Err(format!("auth token #{}: empty token", i + 1));
            }
            let scopes = scopes
                .split('+')
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        format!(
                            "auth token #{}: unknown scope {s:?} (check, grant, admin)",
                            i + 1
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            by_token.insert(token.to_string(), scopes);
        }
        Ok(Tokens {
            by_token: Arc::new(by_token),
        })
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        !self.by_token.is_empty()
    }

    /// Interceptor: attaches the caller's scopes, or refuses the call.
    pub fn authenticate(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if !self.enabled() {
            req.extensions_mut().insert(Caller::Anyone);
            return Ok(req);
        }
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("authorization: a bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization: expected \"Bearer TOKEN\""))?;
        let scopes = self
            .by_token
            .get(token)
            .ok_or_else(|| Status::unauthenticated("authorization: unknown token"))?
            .clone();
        req.extensions_mut().insert(Caller::Scoped(scopes));
        Ok(req)
    }
}

/// The caller of a request (authentication off when the interceptor did not run).
pub fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Scoped(Vec::new()))
}

/// Grant and Admin writes: with an actor Warden's own rules decide and the
/// credential needs `grant` or `admin` (and `admin` when the actor is an
/// administrator, which the engine checks); without one it needs `admin`.
pub fn require_write<T>(req: &Request<T>, actor: &str) -> Result<Writer, Status> {
    let c = caller(req);
    if actor.is_empty() {
        c.require(&[Scope::Admin])?;
        Ok(Writer::Operator)
    } else {
        c.require(&[Scope::Grant, Scope::Admin])?;
        Ok(Writer::Actor {
            user_id: actor.to_string(),
            admin_scope: c.has(Scope::Admin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_scope() {
        let t = Tokens::parse(&["abc=check+grant".into()]).unwrap();
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Bearer abc".parse().unwrap());
        let req = t.authenticate(req).unwrap();
        assert!(caller(&req).require(&[Scope::Check]).is_ok());
        assert_eq!(
            caller(&req).require(&[Scope::Admin]).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let bad = t.authenticate(Request::new(())).unwrap_err();
        assert_eq!(bad.code(), tonic::Code::Unauthenticated);
        assert!(Tokens::parse(&["abc=root".into()])
            .unwrap_err()
            .contains("#1"));
    }
}
