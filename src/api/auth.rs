//! Bearer tokens with scopes (`check`, `grant`, `admin`), each optionally
//! limited to a list of organizations. With no tokens configured every call
//! is let through (a laptop or a trusted sidecar); with tokens, each call
//! needs one that carries the scope it requires and names the organization
//! it touches. Tokens never reach the logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tonic::{Request, Status};

use crate::engine::error::bounded;
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

/// What one token allows: its scopes, and the organizations it is limited
/// to (`None`: every organization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    scopes: Vec<Scope>,
    orgs: Option<Vec<String>>,
    /// Recorded as the actor of the operator writes it makes: the entry's
    /// `#name`, else "token:" and the first 8 hex digits of the token's
    /// SHA-256 (which identify it without revealing it).
    name: String,
}

/// The scopes and organizations of the caller, attached to each request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off.
    Anyone,
    /// A token allowing this.
    Token(Arc<Credential>),
}

impl Caller {
    /// Whether the caller holds `scope` (everyone does with authentication off).
    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(c) => c.scopes.contains(&scope),
        }
    }

    /// Fails unless the caller holds one of `scopes`.
    pub fn require(&self, scopes: &[Scope]) -> Result<(), Status> {
        if scopes.iter().any(|s| self.has(*s)) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "the credential needs the {} scope",
            scopes
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// Whether the caller may touch organization `org_id`.
    pub fn may_use_org(&self, org_id: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(c) => match &c.orgs {
                None => true,
                Some(orgs) => orgs.iter().any(|o| o == org_id),
            },
        }
    }

    /// The one rule of organization-limited credentials: every call that
    /// touches an organization outside the token's list is refused, reads,
    /// checks, lists and writes alike.
    pub fn require_org(&self, org_id: &str) -> Result<(), Status> {
        if self.may_use_org(org_id) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "org_id: the credential is not valid for organization '{}'",
                bounded(org_id)
            )))
        }
    }

    /// Who the change audit records for an operator write: the token's
    /// name, or "anonymous" with authentication off.
    pub fn actor_name(&self) -> String {
        match self {
            Caller::Anyone => "anonymous".to_string(),
            Caller::Token(c) => c.name.clone(),
        }
    }

    /// Whether the credential is limited to a list of organizations.
    pub fn is_org_limited(&self) -> bool {
        matches!(self, Caller::Token(c) if c.orgs.is_some())
    }
}

/// One configured token: the SHA-256 of its text (compared in constant
/// time, so neither a map look-up nor an early exit reveals how much of a
/// guess was right) and what it allows.
#[derive(Debug, Clone)]
struct Entry {
    digest: [u8; 32],
    credential: Arc<Credential>,
}

/// A set of tokens, with those read from the token file replaceable.
#[derive(Debug, Clone, Default)]
struct TokenSet {
    fixed: Vec<Entry>,
    from_file: Vec<Entry>,
}

impl TokenSet {
    fn find(&self, token: &str) -> Option<Arc<Credential>> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u64;
        for (i, e) in self.fixed.iter().chain(&self.from_file).enumerate() {
            let same = presented.ct_eq(&e.digest);
            index.conditional_assign(&(i as u64), same);
            found |= same;
        }
        if !bool::from(found) {
            return None;
        }
        let i = usize::try_from(index).ok()?;
        self.fixed
            .get(i)
            .or_else(|| self.from_file.get(i.checked_sub(self.fixed.len())?))
            .map(|e| e.credential.clone())
    }

    fn check_unique(&self) -> Result<(), String> {
        let mut digests: Vec<&[u8; 32]> = self
            .fixed
            .iter()
            .chain(&self.from_file)
            .map(|e| &e.digest)
            .collect();
        digests.sort();
        if digests.windows(2).any(|w| w[0] == w[1]) {
            return Err("the same token is configured twice".into());
        }
        Ok(())
    }
}

/// Parses one `TOKEN=scope+scope[@org+org][#name]` entry; an error names the entry
/// by `place` (a position or a line number), never by its text.
fn parse_entry(place: &str, entry: &str) -> Result<Entry, String> {
    let entry = entry.trim();
    // Scopes and org ids never contain '=', so a token may (base64 padding).
    let (token, grant) = entry
        .rsplit_once('=')
        .ok_or_else(|| format!("{place}: expected TOKEN=scope+scope[@org+org]"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("{place}: empty token"));
    }
    if token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{place}: a token is printable ASCII without spaces (it travels in a header)"
        ));
    }
    // Names, scopes and org ids never contain '#': a '#' after the last
    // '=' starts the name.
    let (grant, name) = match grant.split_once('#') {
        Some((g, n)) => {
            let n = n.trim();
            crate::engine::ids::check_id("name", n, 128)
                .map_err(|e| format!("{place}: token {e}"))?;
            (g, Some(n.to_string()))
        }
        None => (grant, None),
    };
    // Org ids may contain '@', scopes never do: the first '@' ends the scopes.
    let (scopes, orgs) = match grant.split_once('@') {
        Some((s, o)) => (s, Some(o)),
        None => (grant, None),
    };
    let scopes = scopes
        .split('+')
        .map(|s| {
            // The text is not echoed: a line written the wrong way round
            // would put its token here.
            Scope::parse(s).ok_or_else(|| format!("{place}: unknown scope (check, grant, admin)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let orgs = match orgs {
        None => None,
        Some(list) => Some(
            list.split('+')
                .map(|o| {
                    let o = o.trim();
                    crate::engine::ids::check_id("org", o, usize::MAX)
                        .map(|()| o.to_string())
                        .map_err(|e| format!("{place}: organization {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let name = name.unwrap_or_else(|| {
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("token:{hex}")
    });
    Ok(Entry {
        digest,
        credential: Arc::new(Credential { scopes, orgs, name }),
    })
}

/// Parses a token file: one entry a line, `#` comments and blank lines
/// ignored.
fn parse_file_text(path: &Path, text: &str) -> Result<Vec<Entry>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(n, line)| parse_entry(&format!("{} line {}", path.display(), n + 1), line))
        .collect()
}

/// Configured tokens: fixed ones (environment, command line) and those of
/// the token file, which [`Tokens::watch_file`] replaces when it changes.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    set: Arc<RwLock<Arc<TokenSet>>>,
    file: Option<PathBuf>,
    /// Whether fixed tokens were given: they never change once parsed, so
    /// each call learns whether authentication is on without the lock.
    fixed: bool,
}

impl Tokens {
    /// Parses `TOKEN=scope+scope[@org+org][#name]` entries; an error names the
    /// entry (by position, never by its text).
    pub fn parse(entries: &[String]) -> Result<Tokens, String> {
        let fixed = entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_entry(&format!("auth token #{}", i + 1), e))
            .collect::<Result<Vec<_>, _>>()?;
        let set = TokenSet {
            fixed,
            from_file: Vec::new(),
        };
        set.check_unique()?;
        Ok(Tokens {
            fixed: !set.fixed.is_empty(),
            set: Arc::new(RwLock::new(Arc::new(set))),
            file: None,
        })
    }

    /// Adds the tokens of `path`. With a token file authentication is on
    /// even while the file lists no token, so that emptying it refuses
    /// everyone rather than letting everyone in.
    pub fn with_file(mut self, path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--auth-token-file {}: {e}", path.display()))?;
        self.replace_file_tokens(path, &text)?;
        self.file = Some(path.to_path_buf());
        Ok(self)
    }

    fn replace_file_tokens(&self, path: &Path, text: &str) -> Result<(), String> {
        let from_file = parse_file_text(path, text)?;
        let mut guard = self.set.write();
        let next = TokenSet {
            fixed: guard.fixed.clone(),
            from_file,
        };
        next.check_unique()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        *guard = Arc::new(next);
        Ok(())
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.fixed
    }

    /// Re-reads the token file every `every` until `halt` turns true; a
    /// file that cannot be read or parsed keeps the tokens in force and
    /// logs why (naming lines, never tokens).
    pub async fn watch_file(self, every: Duration, mut halt: tokio::sync::watch::Receiver<bool>) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let mut applied = tokio::fs::read(&path).await.ok();
        let mut pending: Option<Vec<u8>> = None;
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = halt.changed() => return,
            }
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) => {
                    if applied.is_some() {
                        tracing::error!(path = %path.display(), error = %e, "cannot read the token file; keeping the tokens in force");
                        applied = None;
                    }
                    continue;
                }
            };
            if applied.as_deref() == Some(bytes.as_slice()) {
                pending = None;
                continue;
            }
            // A file being rewritten in place may be read half-written (a
            // line cut before its `@orgs` would widen a token): apply only
            // content that stayed the same for one whole interval.
            if pending.as_deref() != Some(bytes.as_slice()) {
                pending = Some(bytes);
                continue;
            }
            pending = None;
            let reloaded = std::str::from_utf8(&bytes)
                .map_err(|_| format!("{}: not UTF-8", path.display()))
                .and_then(|text| self.replace_file_tokens(&path, text));
            match reloaded {
                Ok(()) => tracing::info!(path = %path.display(), "token file reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    "token file refused; keeping the tokens in force"
                ),
            }
            applied = Some(bytes);
        }
    }

    /// Interceptor: attaches the caller's credential, or refuses the call.
    pub fn authenticate(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        let caller = self.caller_of(header)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }

    /// The caller an `authorization` header value names, for every
    /// transport (gRPC metadata, HTTP headers): anyone when no tokens are
    /// configured, else the token's credential or UNAUTHENTICATED.
    pub fn caller_of(&self, authorization: Option<&str>) -> Result<Caller, Status> {
        if !self.enabled() {
            return Ok(Caller::Anyone);
        }
        let header = authorization
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization: a bearer token is required"))?;
        let token = bearer_token(header)
            .ok_or_else(|| Status::unauthenticated("authorization: expected \"Bearer TOKEN\""))?;
        let set = self.set.read().clone();
        let credential = set
            .find(token)
            .ok_or_else(|| Status::unauthenticated("authorization: unknown token"))?;
        Ok(Caller::Token(credential))
    }
}

/// A service whose every call first learns its caller from the
/// `authorization` header ([`Tokens::caller_of`]) and carries it in the
/// request's extensions, or is answered UNAUTHENTICATED without reaching
/// the service. It does what an interceptor over [`Tokens::authenticate`]
/// does, on the HTTP request as it comes: tonic's `InterceptedService`
/// takes each request apart into a `tonic::Request` and rebuilds it (URI,
/// method, header map, extensions), 1.4k instructions a call
/// (docs/benchmarks.md, "Part C — service layer").
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    tokens: Tokens,
}

impl<S> Authenticated<S> {
    /// `inner`, its callers authenticated by `tokens`.
    pub fn new(inner: S, tokens: Tokens) -> Self {
        Authenticated { inner, tokens }
    }
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = futures::future::Either<
        S::Future,
        futures::future::Ready<Result<http::Response<RB>, S::Error>>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // A value that is not visible ASCII is no bearer token: read as
        // empty, it is refused as a missing one would be. With
        // authentication off the header is not looked up at all (a hash
        // and a probe of the header map per call): no value changes
        // `caller_of`'s answer then.
        let header = if self.tokens.enabled() {
            req.headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap_or(""))
        } else {
            None
        };
        match self.tokens.caller_of(header) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(status) => {
                futures::future::Either::Right(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

/// The token of an `authorization` value: the scheme `Bearer` in any case
/// (RFC 7235 schemes are case-insensitive), whitespace around tolerated.
fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, token) = header.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The caller of a request; a request the interceptor did not see may do
/// nothing.
pub fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(nobody)
}

/// The caller of a request the interceptor did not see: no scope, no
/// organization.
fn nobody() -> Caller {
    Caller::Token(Arc::new(Credential {
        scopes: Vec::new(),
        orgs: Some(Vec::new()),
        name: "unauthenticated".to_string(),
    }))
}

/// Reads and checks: the caller needs one of `scopes` and organization
/// `org_id` inside its credential's list.
pub fn require_in<T>(req: &Request<T>, scopes: &[Scope], org_id: &str) -> Result<(), Status> {
    require_in_extensions(req.extensions(), scopes, org_id)
}

/// [`require_in`] on a request's extensions.
pub fn require_in_extensions(
    extensions: &http::Extensions,
    scopes: &[Scope],
    org_id: &str,
) -> Result<(), Status> {
    // Borrowed, not cloned as `caller` does: this runs on every Check.
    let owned;
    let c = match extensions.get::<Caller>() {
        Some(c) => c,
        None => {
            owned = nobody();
            &owned
        }
    };
    c.require(scopes)?;
    c.require_org(org_id)
}

/// Grant and Admin writes to `org_id`: with an actor Warden's own rules
/// decide and the credential needs `grant` or `admin` (and `admin` when the
/// actor is an administrator, which the engine checks); without one it
/// needs `admin`. Either way the organization must be inside the
/// credential's list.
pub fn require_write<T>(req: &Request<T>, org_id: &str, actor: &str) -> Result<WriteAs, Status> {
    caller(req).write_as(org_id, actor)
}

impl Caller {
    /// The writer this caller may write to `org_id` as, by the rules of
    /// [`require_write`]; every transport that takes writes (gRPC, the
    /// console's What if) asks this.
    pub fn write_as(&self, org_id: &str, actor: &str) -> Result<WriteAs, Status> {
        let writer = if actor.is_empty() {
            self.require(&[Scope::Admin])?;
            Writer::Operator
        } else {
            self.require(&[Scope::Grant, Scope::Admin])?;
            Writer::Actor {
                user_id: actor.to_string(),
                admin_scope: self.has(Scope::Admin),
            }
        };
        self.require_org(org_id)?;
        Ok(WriteAs {
            writer,
            operator: self.actor_name(),
        })
    }
}

/// A write without an actor by the caller of `req`, which the handler has
/// already checked holds the admin scope.
pub fn operator<T>(req: &Request<T>) -> WriteAs {
    WriteAs {
        writer: Writer::Operator,
        operator: caller(req).actor_name(),
    }
}

/// Who makes a write: the [`Writer`] Warden authorizes, and the name the
/// change audit records when the writer is the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteAs {
    /// The writer.
    pub writer: Writer,
    /// The credential's name ([`Caller::actor_name`]).
    pub operator: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(t: &Tokens, header: &str) -> Result<Caller, Status> {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        t.authenticate(req).map(|r| caller(&r))
    }

    #[test]
    fn tokens_parse_and_scope() {
        let t = Tokens::parse(&["abc=check+grant".into()]).unwrap();
        let c = call(&t, "Bearer abc").unwrap();
        assert!(c.require(&[Scope::Check]).is_ok());
        assert_eq!(
            c.require(&[Scope::Admin]).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let bad = t.authenticate(Request::new(())).unwrap_err();
        assert_eq!(bad.code(), tonic::Code::Unauthenticated);
        assert!(Tokens::parse(&["abc=root".into()])
            .unwrap_err()
            .contains("#1"));
    }

    #[test]
    fn org_limited_tokens_refuse_other_organizations() {
        let t = Tokens::parse(&[
            "limited=check@acme+org@with:at".into(),
            "everywhere=check".into(),
        ])
        .unwrap();
        let limited = call(&t, "Bearer limited").unwrap();
        assert!(limited.is_org_limited());
        assert!(limited.require_org("acme").is_ok());
        assert!(limited.require_org("org@with:at").is_ok());
        let e = limited.require_org("globex").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("org_id") && e.message().contains("globex"));
        let everywhere = call(&t, "Bearer everywhere").unwrap();
        assert!(!everywhere.is_org_limited());
        assert!(everywhere.require_org("globex").is_ok());
        assert!(Tokens::parse(&["t=check@bad org".into()])
            .unwrap_err()
            .contains("#1"));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_whitespace_tolerated() {
        let t = Tokens::parse(&["abc=check".into()]).unwrap();
        for header in [
            "bearer abc",
            "BEARER abc",
            "  Bearer   abc  ",
            "bEaReR\tabc",
        ] {
            assert!(call(&t, header).is_ok(), "{header:?}");
        }
        for header in ["Basic abc", "Bearerabc", "Bearer", "abc", "Bearer abd"] {
            assert_eq!(
                call(&t, header).unwrap_err().code(),
                tonic::Code::Unauthenticated,
                "{header:?}"
            );
        }
    }

    #[test]
    fn constant_time_lookup_finds_exactly_the_configured_token() {
        let entries: Vec<String> = (0..50).map(|i| format!("token-{i}=check@org{i}")).collect();
        let t = Tokens::parse(&entries).unwrap();
        let set = t.set.read().clone();
        for i in 0..50 {
            let c = set.find(&format!("token-{i}")).unwrap();
            assert_eq!(c.orgs, Some(vec![format!("org{i}")]));
        }
        for miss in ["token-50", "token-1 ", "", "Token-1", "token-"] {
            assert!(set.find(miss).is_none(), "{miss:?}");
        }
        // A token may end with base64 padding.
        let t = Tokens::parse(&["c2VjcmV0==admin".into()]).unwrap();
        assert!(call(&t, "Bearer c2VjcmV0=").is_ok());
        assert!(Tokens::parse(&["a=check".into(), "a=admin".into()])
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn a_token_file_has_comments_and_blank_lines_and_errors_name_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# operators\n\nops=admin\n  reader=check@acme  \n").unwrap();
        let t = Tokens::parse(&["env-token=grant".into()])
            .unwrap()
            .with_file(&path)
            .unwrap();
        assert!(t.enabled());
        assert!(call(&t, "Bearer ops").unwrap().has(Scope::Admin));
        assert!(call(&t, "Bearer env-token").unwrap().has(Scope::Grant));
        // A file token may not repeat an environment token.
        assert!(t
            .replace_file_tokens(&path, "env-token=admin\n")
            .unwrap_err()
            .contains("twice"));
        assert!(!call(&t, "Bearer reader").unwrap().may_use_org("globex"));
        let e = t
            .replace_file_tokens(&path, "ops=admin\nsecret-text=rooot\n")
            .unwrap_err();
        assert!(e.contains("line 2") && !e.contains("secret-text"), "{e}");
        // Written the wrong way round, the token stands where a scope should.
        let e = t
            .replace_file_tokens(&path, "admin=secret-text\n")
            .unwrap_err();
        assert!(e.contains("line 1") && !e.contains("secret-text"), "{e}");
        // The refused text changed nothing.
        assert!(call(&t, "Bearer reader").is_ok());
        // An emptied file removes its tokens only; with no token at all it
        // refuses everyone rather than turning authentication off.
        t.replace_file_tokens(&path, "# nobody\n").unwrap();
        assert!(call(&t, "Bearer env-token").is_ok());
        assert_eq!(
            call(&t, "Bearer ops").unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        std::fs::write(&path, "# nobody\n").unwrap();
        let only_file = Tokens::default().with_file(&path).unwrap();
        assert!(only_file.enabled());
        assert_eq!(
            call(&only_file, "Bearer ops").unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn a_token_is_recorded_by_its_name_or_a_fingerprint_never_itself() {
        let t = Tokens::parse(&[
            "named=admin@acme#ci-deployer".into(),
            "p#q=admin".into(),
            "unnamed=admin".into(),
        ])
        .unwrap();
        let name = |token: &str| call(&t, &format!("Bearer {token}")).unwrap().actor_name();
        assert_eq!(name("named"), "ci-deployer");
        // A '#' before the '=' belongs to the token.
        assert!(name("p#q").starts_with("token:"));
        let fingerprint: String = Sha256::digest(b"unnamed")
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(name("unnamed"), format!("token:{fingerprint}"));
        assert_eq!(Caller::Anyone.actor_name(), "anonymous");
        // The limit to organizations still applies with a name.
        assert!(!call(&t, "Bearer named").unwrap().may_use_org("globex"));
        for bad in ["t=admin#", "t=admin#two words", "t=admin#a=b"] {
            assert!(Tokens::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_check_the_organization_too() {
        let t = Tokens::parse(&["g=grant@acme".into()]).unwrap();
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Bearer g".parse().unwrap());
        let req = t.authenticate(req).unwrap();
        assert!(matches!(
            require_write(&req, "acme", "erin").map(|w| w.writer),
            Ok(Writer::Actor {
                admin_scope: false,
                ..
            })
        ));
        assert_eq!(
            require_write(&req, "globex", "erin").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            require_write(&req, "acme", "").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }
}
