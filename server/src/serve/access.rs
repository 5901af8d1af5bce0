//! Users, roles and grants, PostgreSQL's model cut to what an OLAP store needs: a user is a role that may log in,
//! roles are members of other roles, and a role holds `SELECT` and `INSERT` (load, ingest, delete rows) on named
//! tables or on every table (`*`). Three roles always exist: `admin` (a superuser: everything, including users,
//! DROP TABLE, rules and ingestions), `reader` and `writer` (ordinary roles, granted tables like any other).
//! The whole of it is one JSON value in the catalog ([`basalt_segment::Manifest::access`]), changed by
//! compare-and-swap commits, so every node and every restart sees the same users.
//!
//! Secrets are stored only as verifiers: an argon2id hash (HTTP basic auth), PostgreSQL's SCRAM-SHA-256 verifier
//! (salt, iterations, StoredKey, ServerKey), PostgreSQL's MD5 hash when `pg_auth = "md5"`, and SHA-256 of each API
//! token (tokens are 256 random bits, so a fast hash is enough).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, Statement};

use super::ServeError;

/// The superuser role.
pub const ADMIN: &str = "admin";
/// Roles that always exist.
pub const BUILTIN_ROLES: [&str; 3] = [ADMIN, "reader", "writer"];
/// Grants on every table.
pub const ALL_TABLES: &str = "*";
/// API tokens start with this, so that a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "bst_";
const SCRAM_ITERATIONS: usize = 4096;

/// Every role, by lower-case name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// The name as created (keys are lower case).
    pub name: String,
    /// A user: may log in.
    #[serde(default)]
    pub login: bool,
    #[serde(default)]
    pub superuser: bool,
    /// argon2id PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as PostgreSQL stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram: Option<String>,
    /// `md5` + hex(md5(password || user)), as PostgreSQL stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Roles this one is a member of (lower case).
    #[serde(default)]
    pub member_of: BTreeSet<String>,
    /// Tables (lower case, or `*`) this role may read.
    #[serde(default)]
    pub select: BTreeSet<String>,
    /// Tables (lower case, or `*`) this role may write: load, ingest, delete rows.
    #[serde(default)]
    pub insert: BTreeSet<String>,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

/// A user as the config file defines it.
pub struct UserDefinition<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub roles: &'a [String],
    pub select: &'a [String],
    pub insert: &'a [String],
}

/// An API token: its id (shown in listings, used to revoke it) and the SHA-256 of its secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub sha256: String,
    #[serde(default)]
    pub name: String,
    pub created_ms: i64,
}

/// What a request may do: resolved from the roles at the time of the request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub superuser: bool,
    select: BTreeSet<String>,
    insert: BTreeSet<String>,
}

impl Principal {
    /// Everything allowed: a server without authentication.
    pub fn open(name: &str) -> Principal {
        Principal {
            name: name.to_string(),
            superuser: true,
            select: BTreeSet::new(),
            insert: BTreeSet::new(),
        }
    }

    fn holds(set: &BTreeSet<String>, table: &str) -> bool {
        set.contains(ALL_TABLES) || set.contains(&table.to_lowercase())
    }

    pub fn may_read(&self, table: &str) -> bool {
        self.superuser || Self::holds(&self.select, table)
    }

    pub fn may_write(&self, table: &str) -> bool {
        self.superuser || Self::holds(&self.insert, table)
    }

    /// The readable tables for the query engine ([`basalt_query::QueryContext::readable`]): `None` for all.
    pub fn readable(&self) -> Option<Arc<BTreeSet<String>>> {
        if self.superuser || self.select.contains(ALL_TABLES) {
            None
        } else {
            Some(Arc::new(self.select.clone()))
        }
    }

    /// An error unless this principal is a superuser.
    pub fn require_admin(&self, what: &str) -> Result<(), ServeError> {
        if self.superuser {
            Ok(())
        } else {
            Err(ServeError::Forbidden(format!(
                "permission denied: {what} needs the {ADMIN} role (user {:?} does not have it)",
                self.name
            )))
        }
    }

    pub fn require_write(&self, table: &str) -> Result<(), ServeError> {
        if self.may_write(table) {
            Ok(())
        } else {
            Err(ServeError::Forbidden(format!(
                "permission denied for table {table}: user {:?} may not write to it (GRANT INSERT ON {table} TO ...)",
                self.name
            )))
        }
    }

    pub fn require_read(&self, table: &str) -> Result<(), ServeError> {
        if self.may_read(table) {
            Ok(())
        } else {
            Err(ServeError::Forbidden(format!(
                "permission denied for table {table}"
            )))
        }
    }
}

fn forbidden_change(what: String) -> ServeError {
    ServeError::BadRequest(what)
}

impl Access {
    /// The access data held by the catalog (the built-in roles, when it holds none yet).
    pub fn from_manifest(value: Option<&serde_json::Value>) -> Result<Access, ServeError> {
        let mut access = match value {
            None => Access::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                ServeError::Internal(format!("the catalog's users and grants do not read: {e}"))
            })?,
        };
        for name in BUILTIN_ROLES {
            access
                .roles
                .entry(name.to_string())
                .or_insert_with(|| Role {
                    name: name.to_string(),
                    superuser: name == ADMIN,
                    ..Default::default()
                });
        }
        Ok(access)
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(&name.to_lowercase())
    }

    /// What `user` may do, through its own grants and those of every role it is a member of (transitively);
    /// `None` when there is no such user (a role that cannot log in is no user).
    pub fn principal(&self, user: &str) -> Option<Principal> {
        let role = self.role(user).filter(|r| r.login)?;
        Some(self.effective(role))
    }

    /// Every user and role, for `pg_roles` (a role is a superuser through its memberships too).
    pub fn host_roles(&self) -> Vec<basalt_query::HostRole> {
        self.roles
            .values()
            .map(|r| basalt_query::HostRole {
                name: r.name.clone(),
                superuser: self.effective(r).superuser,
                login: r.login,
                member_of: r.member_of.iter().cloned().collect(),
            })
            .collect()
    }

    /// What `role` may do through its own grants and those of every role it is a member of.
    fn effective(&self, role: &Role) -> Principal {
        let mut p = Principal {
            name: role.name.clone(),
            superuser: false,
            select: BTreeSet::new(),
            insert: BTreeSet::new(),
        };
        let mut seen = BTreeSet::new();
        let mut todo = vec![role.name.to_lowercase()];
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(r) = self.roles.get(&name) else {
                continue;
            };
            p.superuser |= r.superuser;
            p.select.extend(r.select.iter().cloned());
            p.insert.extend(r.insert.iter().cloned());
            todo.extend(r.member_of.iter().cloned());
        }
        p
    }

    /// The user whose API token `token` is, if any.
    pub fn token_user(&self, token: &str) -> Option<&Role> {
        let hash = sha256_hex(token.as_bytes());
        self.roles
            .values()
            .find(|r| r.login && r.tokens.iter().any(|t| t.sha256 == hash))
    }

    /// Sets `user`'s password verifiers (argon2id, SCRAM-SHA-256, and MD5 when `md5`). Slow by design (argon2):
    /// call it off the async threads.
    pub fn set_password(role: &mut Role, password: &str, md5: bool) -> Result<(), ServeError> {
        if password.is_empty() {
            return Err(forbidden_change("a password may not be empty".into()));
        }
        role.password = Some(hash_password(password)?);
        role.scram = Some(scram_verifier(password)?);
        role.md5 = md5.then(|| {
            format!(
                "md5{:x}",
                md5::compute(format!("{password}{}", role.name).as_bytes())
            )
        });
        Ok(())
    }

    /// Creates or replaces login user `name` as a member of `roles`, with `password`.
    pub fn upsert_user(
        &mut self,
        name: &str,
        password: &str,
        roles: &[&str],
        md5: bool,
    ) -> Result<(), ServeError> {
        check_name(name)?;
        let key = name.to_lowercase();
        if BUILTIN_ROLES.contains(&key.as_str()) {
            return Err(forbidden_change(format!(
                "{key:?} is a built-in role, not a user name; pick another"
            )));
        }
        let mut role = self.roles.remove(&key).unwrap_or_else(|| Role {
            name: name.to_string(),
            ..Default::default()
        });
        role.login = true;
        for r in roles {
            let r = r.to_lowercase();
            if !self.roles.contains_key(&r) {
                return Err(forbidden_change(format!("role {r:?} does not exist")));
            }
            role.member_of.insert(r);
        }
        let r = Self::set_password(&mut role, password, md5);
        self.roles.insert(key, role);
        r
    }

    /// Makes login user `name` exactly this: `password`, a member of `roles` only, with its own `select` and
    /// `insert` grants (lower-cased table names, or `*`). Its API tokens stay. For the users of the config file.
    pub fn define_user(&mut self, user: &UserDefinition<'_>, md5: bool) -> Result<(), ServeError> {
        let roles: Vec<&str> = user.roles.iter().map(String::as_str).collect();
        self.upsert_user(user.name, user.password, &roles, md5)?;
        let role = self
            .roles
            .get_mut(&user.name.to_lowercase())
            .ok_or_else(|| ServeError::NotFound(format!("no user {:?}", user.name)))?;
        role.member_of = roles.iter().map(|r| r.to_lowercase()).collect();
        role.select = user.select.iter().map(|t| t.to_lowercase()).collect();
        role.insert = user.insert.iter().map(|t| t.to_lowercase()).collect();
        Ok(())
    }

    /// Whether login user `name` is already exactly `user` (so a restart need not rewrite the catalog).
    pub fn is_defined_as(&self, user: &UserDefinition<'_>, md5: bool) -> bool {
        let lower =
            |v: &[String]| -> BTreeSet<String> { v.iter().map(|t| t.to_lowercase()).collect() };
        self.role(user.name).is_some_and(|r| {
            r.login
                && r.member_of == lower(user.roles)
                && r.select == lower(user.select)
                && r.insert == lower(user.insert)
                && (r.md5.is_some() || !md5)
                && r.password
                    .as_deref()
                    .is_some_and(|h| verify_password(h, user.password))
        })
    }

    /// Creates an API token for `user`: the token (shown once) and its id.
    pub fn new_token(&mut self, user: &str, name: &str) -> Result<(String, String), ServeError> {
        let role = self
            .roles
            .get_mut(&user.to_lowercase())
            .filter(|r| r.login)
            .ok_or_else(|| ServeError::NotFound(format!("no user {user:?}")))?;
        let secret = random_hex(32)?;
        let token = format!("{TOKEN_PREFIX}{secret}");
        let id = random_hex(8)?;
        role.tokens.push(Token {
            id: id.clone(),
            sha256: sha256_hex(token.as_bytes()),
            name: name.to_string(),
            created_ms: chrono::Utc::now().timestamp_millis(),
        });
        Ok((token, id))
    }

    /// Revokes token `id` of `user`; whether it existed.
    pub fn revoke_token(&mut self, user: &str, id: &str) -> bool {
        match self.roles.get_mut(&user.to_lowercase()) {
            Some(r) => {
                let before = r.tokens.len();
                r.tokens.retain(|t| t.id != id);
                r.tokens.len() != before
            }
            None => false,
        }
    }

    /// Whether at least one user that can log in is a superuser (the last one may not be dropped or demoted).
    pub fn has_admin_user(&self) -> bool {
        self.roles
            .values()
            .filter(|r| r.login)
            .any(|r| self.principal(&r.name).is_some_and(|p| p.superuser))
    }

    /// A user or role listing without secrets, for `/v1/users` and `sys.users`-like answers.
    pub fn describe(&self, role: &Role) -> serde_json::Value {
        let effective = self.principal(&role.name);
        serde_json::json!({
            "name": role.name,
            "login": role.login,
            "superuser": effective.as_ref().map_or(role.superuser, |p| p.superuser),
            "member_of": role.member_of,
            "select": role.select,
            "insert": role.insert,
            "tokens": role.tokens.iter().map(|t| serde_json::json!({
                "id": t.id, "name": t.name, "created_ms": t.created_ms
            })).collect::<Vec<_>>(),
        })
    }
}

fn check_name(name: &str) -> Result<(), ServeError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(forbidden_change(format!(
            "user and role names are 1 to 63 letters, digits, '_', '-', '.' or '@'; {name:?} is not"
        )))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ServeError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| ServeError::Internal(format!("no OS randomness: {e}")))?;
    Ok(b)
}

fn random_hex(n: usize) -> Result<String, ServeError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(hex(&bytes[..n.min(32)]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hash_password(password: &str) -> Result<String, ServeError> {
    let salt: [u8; 16] = random_bytes()?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ServeError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServeError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the argon2 PHC string `phc`. Slow by design.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn scram_verifier(password: &str) -> Result<String, ServeError> {
    use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
    let salt: [u8; 16] = random_bytes()?;
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, SCRAM_ITERATIONS) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => Ok(format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            b64().encode(salt),
            b64().encode(stored_key),
            b64().encode(server_key)
        )),
        ScramSecret::SaltedPassword { .. } => {
            Err(ServeError::Internal("no SCRAM verifier was derived".into()))
        }
    }
}

/// A stored SCRAM verifier, read back for the PostgreSQL handshake.
pub fn parse_scram(text: &str) -> Option<pgwire::api::auth::sasl::scram::ScramSecret> {
    let rest = text.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    Some(pgwire::api::auth::sasl::scram::ScramSecret::Verifier {
        salt: b64().decode(salt).ok()?,
        iterations: iterations.parse().ok()?,
        stored_key: b64().decode(stored).ok()?,
        server_key: b64().decode(server).ok()?,
    })
}

// ---------------------------------------------------------------------------------------------------------
// SQL: CREATE ROLE/USER, ALTER ROLE/USER, DROP ROLE/USER, GRANT, REVOKE

/// A statement that changes users, roles or grants, with its PostgreSQL command tag; `None` for other statements.
pub fn classify(stmt: &Statement) -> Option<&'static str> {
    match stmt {
        Statement::CreateRole(_) => Some("CREATE ROLE"),
        Statement::AlterRole { .. } => Some("ALTER ROLE"),
        Statement::Drop {
            object_type: ast::ObjectType::Role | ast::ObjectType::User,
            ..
        } => Some("DROP ROLE"),
        Statement::Grant(_) => Some("GRANT"),
        Statement::Revoke(_) => Some("REVOKE"),
        _ => None,
    }
}

fn unsupported(what: impl Into<String>) -> ServeError {
    ServeError::Query(basalt_query::QueryError::unsupported(
        what,
        basalt_query::Pos::default(),
    ))
}

fn string_literal(e: &ast::Expr) -> Result<String, ServeError> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
                Ok(s.clone())
            }
            other => Err(forbidden_change(format!(
                "a password is a string literal, not {other}"
            ))),
        },
        other => Err(forbidden_change(format!(
            "a password is a string literal, not {other}"
        ))),
    }
}

fn ident_name(name: &ast::ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

impl Access {
    /// Applies an access statement ([`classify`]) as `by` runs it, all of it or (on an error) nothing; `md5` also
    /// stores MD5 verifiers. Slow when it sets a password (argon2): call it off the async threads.
    pub fn apply(
        &mut self,
        stmt: &Statement,
        by: &Principal,
        md5: bool,
        tables: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ServeError> {
        by.require_admin("changing users, roles and grants")?;
        let mut next = self.clone();
        next.apply_statement(stmt, by, md5, tables)?;
        *self = next;
        Ok(())
    }

    fn apply_statement(
        &mut self,
        stmt: &Statement,
        by: &Principal,
        md5: bool,
        tables: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ServeError> {
        match stmt {
            Statement::CreateRole(c) => self.create_role(c, md5),
            Statement::AlterRole { name, operation } => {
                self.alter_role(&name.value, operation, md5)
            }
            Statement::Drop {
                names, if_exists, ..
            } => {
                for n in names {
                    let name = ident_name(n);
                    let key = name.to_lowercase();
                    if BUILTIN_ROLES.contains(&key.as_str()) {
                        return Err(forbidden_change(format!(
                            "role {key:?} is built in and cannot be dropped"
                        )));
                    }
                    if key == by.name.to_lowercase() {
                        return Err(forbidden_change(
                            "a user cannot drop itself (log in as another admin)".into(),
                        ));
                    }
                    if self.roles.remove(&key).is_none() && !*if_exists {
                        return Err(ServeError::NotFound(format!(
                            "role \"{name}\" does not exist"
                        )));
                    }
                    for r in self.roles.values_mut() {
                        r.member_of.remove(&key);
                    }
                }
                self.keep_an_admin()
            }
            Statement::Grant(g) => {
                let grantees = self.grantees(&g.grantees)?;
                self.change_grants(&g.privileges, g.objects.as_ref(), &grantees, true, tables)
            }
            Statement::Revoke(r) => {
                let grantees = self.grantees(&r.grantees)?;
                self.change_grants(&r.privileges, r.objects.as_ref(), &grantees, false, tables)?;
                self.keep_an_admin()
            }
            _ => Err(unsupported("this statement")),
        }
    }

    pub fn keep_an_admin(&self) -> Result<(), ServeError> {
        if self.has_admin_user() {
            Ok(())
        } else {
            Err(forbidden_change(
                "this would leave no user with the admin role; grant it to another user first"
                    .into(),
            ))
        }
    }

    fn create_role(&mut self, c: &ast::CreateRole, md5: bool) -> Result<(), ServeError> {
        let mut member_of = BTreeSet::new();
        for r in &c.in_role {
            let key = r.value.to_lowercase();
            if !self.roles.contains_key(&key) {
                return Err(ServeError::NotFound(format!(
                    "role \"{}\" does not exist",
                    r.value
                )));
            }
            member_of.insert(key);
        }
        for n in &c.names {
            let name = ident_name(n);
            check_name(&name)?;
            let key = name.to_lowercase();
            if self.roles.contains_key(&key) {
                if c.if_not_exists {
                    continue;
                }
                return Err(ServeError::Conflict(format!(
                    "role \"{name}\" already exists"
                )));
            }
            let mut role = Role {
                name: name.clone(),
                login: c.login.unwrap_or(false),
                superuser: c.superuser.unwrap_or(false),
                member_of: member_of.clone(),
                ..Default::default()
            };
            match &c.password {
                Some(ast::Password::Password(e)) => {
                    Self::set_password(&mut role, &string_literal(e)?, md5)?
                }
                Some(ast::Password::NullPassword) | None => {}
            }
            self.roles.insert(key, role);
        }
        Ok(())
    }

    fn alter_role(
        &mut self,
        name: &str,
        operation: &ast::AlterRoleOperation,
        md5: bool,
    ) -> Result<(), ServeError> {
        let key = name.to_lowercase();
        let role = self
            .roles
            .get_mut(&key)
            .ok_or_else(|| ServeError::NotFound(format!("role \"{name}\" does not exist")))?;
        let ast::AlterRoleOperation::WithOptions { options } = operation else {
            return Err(unsupported(format!(
                "ALTER ROLE ... {operation} (basalt changes PASSWORD, LOGIN and SUPERUSER)"
            )));
        };
        for o in options {
            match o {
                ast::RoleOption::Password(ast::Password::Password(e)) => {
                    Self::set_password(role, &string_literal(e)?, md5)?
                }
                ast::RoleOption::Password(ast::Password::NullPassword) => {
                    role.password = None;
                    role.scram = None;
                    role.md5 = None;
                }
                ast::RoleOption::Login(b) => role.login = *b,
                ast::RoleOption::SuperUser(b) => role.superuser = *b,
                other => {
                    return Err(unsupported(format!(
                        "role option {other} (basalt has PASSWORD, LOGIN and SUPERUSER)"
                    )))
                }
            }
        }
        if BUILTIN_ROLES.contains(&key.as_str()) && (role.login || role.superuser != (key == ADMIN))
        {
            return Err(forbidden_change(format!(
                "role {key:?} is built in: it cannot log in and keeps its powers"
            )));
        }
        self.keep_an_admin()
    }

    fn grantees(&self, grantees: &[ast::Grantee]) -> Result<Vec<String>, ServeError> {
        grantees
            .iter()
            .map(|g| {
                let name = match &g.name {
                    Some(ast::GranteeName::ObjectName(n)) => ident_name(n),
                    _ => return Err(unsupported(format!("grantee {g}"))),
                };
                let key = name.to_lowercase();
                if self.roles.contains_key(&key) {
                    Ok(key)
                } else {
                    Err(ServeError::NotFound(format!(
                        "role \"{name}\" does not exist"
                    )))
                }
            })
            .collect()
    }

    fn change_grants(
        &mut self,
        privileges: &ast::Privileges,
        objects: Option<&ast::GrantObjects>,
        grantees: &[String],
        grant: bool,
        tables: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ServeError> {
        // Role membership: GRANT ROLE r TO u (PostgreSQL's GRANT r TO u is read as this).
        if let ast::Privileges::Actions(actions) = privileges {
            if actions
                .iter()
                .all(|a| matches!(a, ast::Action::Role { .. }))
                && objects.is_none()
            {
                for a in actions {
                    let ast::Action::Role { role } = a else {
                        continue;
                    };
                    let name = ident_name(role).to_lowercase();
                    if !self.roles.contains_key(&name) {
                        return Err(ServeError::NotFound(format!(
                            "role \"{name}\" does not exist"
                        )));
                    }
                    for g in grantees {
                        if grant && self.reaches(&name, g) {
                            return Err(forbidden_change(format!(
                                "granting {name:?} to {g:?} would make a cycle of role memberships"
                            )));
                        }
                        if let Some(r) = self.roles.get_mut(g) {
                            if grant {
                                r.member_of.insert(name.clone());
                            } else {
                                r.member_of.remove(&name);
                            }
                        }
                    }
                }
                return Ok(());
            }
        }
        let (select, insert) = match privileges {
            ast::Privileges::All { .. } => (true, true),
            ast::Privileges::Actions(actions) => {
                let mut s = (false, false);
                for a in actions {
                    match a {
                        ast::Action::Select { columns: None } => s.0 = true,
                        ast::Action::Insert { columns: None } => s.1 = true,
                        other => {
                            return Err(unsupported(format!(
                                "privilege {other} (basalt grants SELECT, INSERT and ALL on tables)"
                            )))
                        }
                    }
                }
                s
            }
        };
        let targets: Vec<String> = match objects {
            Some(ast::GrantObjects::Tables(names)) => names
                .iter()
                .map(|n| {
                    let name = ident_name(n);
                    tables(&name).map(|t| t.to_lowercase()).ok_or_else(|| {
                        ServeError::Query(basalt_query::QueryError::UnknownTable {
                            name,
                            pos: basalt_query::Pos::default(),
                        })
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(ast::GrantObjects::AllTablesInSchema { .. }) => vec![ALL_TABLES.to_string()],
            other => {
                return Err(unsupported(format!(
                    "GRANT on {} (basalt grants on tables, or ALL TABLES IN SCHEMA public)",
                    other.map_or("nothing".to_string(), |o| o.to_string())
                )))
            }
        };
        for g in grantees {
            let Some(r) = self.roles.get_mut(g) else {
                continue;
            };
            for t in &targets {
                for (wanted, set) in [(select, &mut r.select), (insert, &mut r.insert)] {
                    if wanted {
                        if grant {
                            set.insert(t.clone());
                        } else {
                            set.remove(t);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether role `from` is `to` or a member of it, directly or through other roles.
    fn reaches(&self, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                if let Some(r) = self.roles.get(&n) {
                    todo.extend(r.member_of.iter().cloned());
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(access: &mut Access, sql: &str) -> Result<(), ServeError> {
        let stmt = basalt_query::parse(sql).map_err(ServeError::Query)?;
        assert!(classify(&stmt).is_some(), "{sql}");
        let tables = |t: &str| {
            ["births", "events"]
                .iter()
                .find(|n| n.eq_ignore_ascii_case(t))
                .map(|s| s.to_string())
        };
        access.apply(&stmt, &Principal::open("root"), false, &tables)
    }

    #[test]
    fn grants_reach_users_through_roles_and_revokes_take_them_back() {
        let mut a = Access::from_manifest(None).unwrap();
        a.upsert_user("root", "pw", &[ADMIN], false).unwrap();
        run(
            &mut a,
            "CREATE USER alice WITH PASSWORD 'a1' IN ROLE reader",
        )
        .unwrap();
        run(&mut a, "CREATE ROLE bob LOGIN PASSWORD 'b1'").unwrap();
        run(&mut a, "GRANT SELECT ON births TO reader").unwrap();
        run(&mut a, "GRANT INSERT ON Events TO bob").unwrap();
        let alice = a.principal("ALICE").unwrap();
        assert!(
            alice.may_read("births") && !alice.may_read("events") && !alice.may_write("births")
        );
        let bob = a.principal("bob").unwrap();
        assert!(bob.may_write("events") && !bob.may_read("events"));
        run(&mut a, "GRANT reader TO bob").unwrap();
        assert!(a.principal("bob").unwrap().may_read("births"));
        run(&mut a, "REVOKE reader FROM bob").unwrap();
        assert!(!a.principal("bob").unwrap().may_read("births"));
        run(&mut a, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bob").unwrap();
        assert!(a.principal("bob").unwrap().may_read("anything"));
        assert!(
            a.principal("reader").is_none(),
            "a role that cannot log in is no user"
        );
        // Unknown tables and roles, cycles, built-ins and the last admin are refused.
        assert!(run(&mut a, "GRANT SELECT ON nope TO bob").is_err());
        assert!(run(&mut a, "GRANT SELECT ON births TO nobody").is_err());
        run(&mut a, "GRANT writer TO reader").unwrap();
        assert!(run(&mut a, "GRANT reader TO writer").is_err());
        assert!(run(&mut a, "DROP ROLE admin").is_err());
        assert!(run(&mut a, "REVOKE admin FROM root").is_err());
        assert!(run(&mut a, "GRANT UPDATE ON births TO bob").is_err());
        run(&mut a, "DROP USER alice").unwrap();
        assert!(a.principal("alice").is_none());
    }

    #[test]
    fn only_an_admin_changes_access() {
        let mut a = Access::from_manifest(None).unwrap();
        a.upsert_user("eve", "pw", &["reader"], false).unwrap();
        let eve = a.principal("eve").unwrap();
        let stmt = basalt_query::parse("GRANT admin TO eve").unwrap();
        let err = a.apply(&stmt, &eve, false, &|_| None).unwrap_err();
        assert_eq!(err.http_status(), 403, "{err}");
    }

    #[test]
    fn passwords_and_tokens_are_stored_as_verifiers_only() {
        let mut a = Access::from_manifest(None).unwrap();
        a.upsert_user("carol", "s3cret", &[], true).unwrap();
        let text = a.to_value().to_string();
        assert!(!text.contains("s3cret"));
        let carol = a.role("carol").unwrap();
        assert!(verify_password(
            carol.password.as_deref().unwrap(),
            "s3cret"
        ));
        assert!(!verify_password(
            carol.password.as_deref().unwrap(),
            "s3cres"
        ));
        // PostgreSQL's MD5 form, computed independently: md5("s3cret" || "carol").
        assert_eq!(
            carol.md5.as_deref().unwrap(),
            format!("md5{:x}", md5::compute(b"s3cretcarol"))
        );
        assert!(parse_scram(carol.scram.as_deref().unwrap()).is_some());
        let (token, id) = a.new_token("carol", "ci").unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && !a.to_value().to_string().contains(&token));
        assert_eq!(a.token_user(&token).unwrap().name, "carol");
        assert!(a.revoke_token("carol", &id));
        assert!(a.token_user(&token).is_none());
    }
}
