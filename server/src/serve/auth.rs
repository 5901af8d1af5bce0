//! Who is asking: HTTP credentials (basic auth with a password or an API token, `Authorization: Bearer`), the
//! PostgreSQL password exchange (SCRAM-SHA-256 or MD5 through pgwire's handlers), and the server's view of the
//! users and grants ([`super::access`]) as of the catalog's current manifest. With `auth` off every request is an
//! open superuser; with it on, a request without valid credentials is answered 401 (SQLSTATE 28P01) and nothing
//! else, except the two health checks load balancers call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use basalt_segment::{AccessUpdate, Catalog, Commit};
use base64::Engine;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

use super::access::{self, Access, Principal};
use super::{ServeError, Server};

/// Paths answered without credentials: liveness checks, which reveal nothing.
const OPEN_PATHS: [&str; 2] = ["/v1/health", "/status/health"];
/// Verified (user, password) pairs remembered, so that a dashboard's every request does not pay for argon2.
const VERIFIED_CAPACITY: usize = 4096;

/// The parsed users and grants of one manifest version, and password checks already made.
#[derive(Default)]
pub struct AuthState {
    parsed: Mutex<Option<(u64, Arc<Access>)>>,
    /// (lower-case user, SHA-256 of the password) -> the argon2 hash it matched: valid while the user's hash is
    /// still that one (a password change or a dropped user invalidates it).
    verified: Mutex<HashMap<(String, String), String>>,
}

impl Server {
    /// The users and grants as the catalog holds them now.
    pub fn access(&self) -> Result<Arc<Access>, ServeError> {
        let manifest = self.catalog.snapshot();
        let mut parsed = self.auth.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, a)) = parsed.as_ref() {
            if *version == manifest.version {
                return Ok(a.clone());
            }
        }
        let a = Arc::new(Access::from_manifest(manifest.access.as_ref())?);
        *parsed = Some((manifest.version, a.clone()));
        Ok(a)
    }

    /// What `user` may do now (with auth off: everything).
    pub fn principal_of(&self, user: &str) -> Result<Principal, ServeError> {
        if !self.config.auth {
            return Ok(Principal::open(user));
        }
        self.access()?.principal(user).ok_or_else(|| {
            ServeError::Unauthenticated(format!("user {user:?} does not exist or may not log in"))
        })
    }

    /// Checks a user's password (argon2, run off the async threads; a match is remembered).
    pub async fn check_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Principal, ServeError> {
        let denied = || {
            ServeError::Unauthenticated(format!("password authentication failed for user {user:?}"))
        };
        let access = self.access()?;
        // An API token is accepted as the password too (pydruid and BI tools send only user and password).
        if password.starts_with(access::TOKEN_PREFIX) {
            return match access.token_user(password) {
                Some(r) if r.name.eq_ignore_ascii_case(user) => self.principal_of(&r.name),
                _ => Err(denied()),
            };
        }
        let role = access.role(user).filter(|r| r.login).ok_or_else(denied)?;
        let phc = role.password.clone().ok_or_else(denied)?;
        let key = (user.to_lowercase(), access::sha256_hex(password.as_bytes()));
        let known = {
            let v = self.auth.verified.lock().unwrap_or_else(|p| p.into_inner());
            v.get(&key).is_some_and(|h| *h == phc)
        };
        if !known {
            let (hash, pw) = (phc.clone(), password.to_string());
            let ok = tokio::task::spawn_blocking(move || access::verify_password(&hash, &pw))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(denied());
            }
            let mut v = self.auth.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() >= VERIFIED_CAPACITY {
                v.clear();
            }
            v.insert(key, phc);
        }
        self.principal_of(&role.name)
    }

    /// The catalog's tables `who` may read, in name order (the table listings of every API).
    pub fn readable_tables(&self, who: &Principal) -> Vec<String> {
        self.catalog
            .snapshot()
            .tables
            .keys()
            .filter(|t| who.may_read(t))
            .cloned()
            .collect()
    }

    /// The principal of an API token.
    pub fn check_token(&self, token: &str) -> Result<Principal, ServeError> {
        let access = self.access()?;
        let role = access.token_user(token).ok_or_else(|| {
            ServeError::Unauthenticated("the token is not valid (revoked, or never issued)".into())
        })?;
        self.principal_of(&role.name)
    }

    /// Changes the users and grants: `change` runs on a copy (off the async threads: it may hash passwords), and
    /// the result is committed only if nobody else changed them meanwhile.
    pub async fn change_access<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Access) -> Result<T, ServeError> + Send + 'static,
    ) -> Result<T, ServeError> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || {
            let manifest = catalog.snapshot();
            let mut access = Access::from_manifest(manifest.access.as_ref())?;
            let out = change(&mut access)?;
            catalog
                .commit(Commit {
                    access: Some(AccessUpdate {
                        expected: manifest.access.clone(),
                        new: access.to_value(),
                    }),
                    ..Default::default()
                })
                .map_err(|e| match e {
                    basalt_segment::Error::AccessConflict => ServeError::Conflict(e.to_string()),
                    other => ServeError::Internal(other.to_string()),
                })?;
            Ok(out)
        })
        .await
        .map_err(|e| ServeError::Internal(format!("access change failed: {e}")))?
    }

    /// At start, with auth on: the configured admin user exists with the configured password, or some admin user
    /// already does; otherwise the server cannot be administered and refuses to start.
    pub async fn bootstrap_access(&self) -> Result<(), ServeError> {
        if !self.config.auth {
            if !self.config.users.0.is_empty() {
                tracing::warn!("the config file defines users, but auth is off: they are not made");
            }
            return Ok(());
        }
        if !self.config.pg_password.is_empty() {
            return Err(ServeError::BadRequest(
                "pg_password is for a server without users; with auth on, PostgreSQL clients log in as basalt users (unset pg_password)".into(),
            ));
        }
        let (user, password) = (
            self.config.auth_admin_user.clone(),
            self.config.auth_admin_password.clone(),
        );
        let md5 = self.config.pg_auth == "md5";
        if !password.is_empty() {
            let roles = [access::ADMIN.to_string()];
            let admin = access::UserDefinition {
                name: &user,
                password: &password,
                roles: &roles,
                select: &[],
                insert: &[],
            };
            self.define_user(&admin, md5).await?;
        }
        for u in &self.config.users.0 {
            let password = match (&u.password, &u.password_env) {
                (Some(p), _) => p.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    ServeError::BadRequest(format!(
                        "user {:?} of the config file takes its password from the environment variable {var}, which is not set",
                        u.name
                    ))
                })?,
                (None, None) => String::new(),
            };
            let user = access::UserDefinition {
                name: &u.name,
                password: &password,
                roles: &u.roles,
                select: &u.select,
                insert: &u.insert,
            };
            self.define_user(&user, md5).await.map_err(|e| {
                ServeError::BadRequest(format!(
                    "user {:?} of the config file: {}",
                    u.name,
                    e.message()
                ))
            })?;
        }
        if self.access()?.has_admin_user() {
            Ok(())
        } else {
            Err(ServeError::BadRequest(format!(
                "auth is on but no user has the admin role: set auth_admin_password (or BASALT_AUTH_ADMIN_PASSWORD) to create {:?}",
                self.config.auth_admin_user
            )))
        }
    }
}

impl Server {
    /// Makes `user` exactly as defined, committing only when it is not already.
    async fn define_user(
        &self,
        user: &access::UserDefinition<'_>,
        md5: bool,
    ) -> Result<(), ServeError> {
        if self.access()?.is_defined_as(user, md5) {
            return Ok(());
        }
        let (name, password) = (user.name.to_string(), user.password.to_string());
        let (roles, select, insert) = (
            user.roles.to_vec(),
            user.select.to_vec(),
            user.insert.to_vec(),
        );
        self.change_access(move |a| {
            a.define_user(
                &access::UserDefinition {
                    name: &name,
                    password: &password,
                    roles: &roles,
                    select: &select,
                    insert: &insert,
                },
                md5,
            )
        })
        .await
    }
}

/// The credentials of an HTTP request.
enum Credentials {
    Basic(String, String),
    Bearer(String),
}

fn credentials(req: &Request) -> Result<Option<Credentials>, ServeError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = |why: &str| ServeError::Unauthenticated(format!("the Authorization header {why}"));
    let text = value.to_str().map_err(|_| bad("is not ASCII text"))?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(|| bad("has no scheme"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad("is not valid base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("has no user:password"))?;
        Ok(Some(Credentials::Basic(
            user.to_string(),
            password.to_string(),
        )))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(Credentials::Bearer(rest.to_string())))
    } else {
        Err(bad("scheme is neither Basic nor Bearer"))
    }
}

/// The axum middleware: puts the request's [`Principal`] into its extensions, or answers 401.
pub async fn authenticate(
    State(server): State<Arc<Server>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let principal = if !server.config.auth || OPEN_PATHS.contains(&path.as_str()) {
        Ok(Principal::open(&server.config.pg_user))
    } else {
        match credentials(&req) {
            Ok(Some(Credentials::Basic(user, password))) => {
                server.check_password(&user, &password).await
            }
            Ok(Some(Credentials::Bearer(token))) => server.check_token(&token),
            Ok(None) => Err(ServeError::Unauthenticated(
                "credentials required: HTTP basic auth, or Authorization: Bearer <token>".into(),
            )),
            Err(e) => Err(e),
        }
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(Arc::new(p));
            next.run(req).await
        }
        Err(e) => {
            server.metrics.auth_failures.inc();
            let mut r = if path.starts_with("/druid/") {
                super::druid::druid_error(&e)
            } else {
                super::http::v1_error(&e)
            };
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"basalt\", charset=\"UTF-8\""),
            );
            r
        }
    }
}

/// The PostgreSQL password exchange's view of the users: SCRAM verifiers, or MD5 hashes.
#[derive(Debug)]
pub struct PgUsers {
    pub server: Arc<Server>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

fn pg_denied(user: &str) -> PgWireError {
    PgWireError::InvalidPassword(user.to_string())
}

#[async_trait]
impl AuthSource for PgUsers {
    /// MD5: PostgreSQL's `md5(md5(password || user) || salt)` from the stored `md5(password || user)`.
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let access = self.server.access().map_err(|_| pg_denied(user))?;
        let stored = access
            .role(user)
            .filter(|r| r.login)
            .and_then(|r| r.md5.clone())
            .ok_or_else(|| pg_denied(user))?;
        let salt: [u8; 4] = {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).map_err(|_| pg_denied(user))?;
            b
        };
        let mut bytes = stored.trim_start_matches("md5").as_bytes().to_vec();
        bytes.extend_from_slice(&salt);
        let hash = format!("md5{:x}", md5::compute(&bytes));
        Ok(Password::new(Some(salt.to_vec()), hash.into_bytes()))
    }

    async fn get_scram_secret(
        &self,
        login: &LoginInfo,
    ) -> PgWireResult<(pgwire::api::auth::sasl::scram::ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let access = self.server.access().map_err(|_| pg_denied(user))?;
        access
            .role(user)
            .filter(|r| r.login)
            .and_then(|r| r.scram.as_deref())
            .and_then(access::parse_scram)
            .map(|s| (s, None))
            .ok_or_else(|| pg_denied(user))
    }
}
