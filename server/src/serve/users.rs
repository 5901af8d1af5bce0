//! `/v1/users`: users, their roles and API tokens over HTTP (what `CREATE USER`, `GRANT role TO user` and
//! `DROP USER` do in SQL). Admins manage everyone; a user may read itself, change its own password and create or
//! revoke its own tokens.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::access::{Principal, BUILTIN_ROLES};
use super::http::{read_body, v1_error};
use super::{ServeError, Server};

type AppState = Arc<Server>;
type Who = Extension<Arc<Principal>>;

fn answer(r: Result<(StatusCode, Value), ServeError>) -> Response {
    match r {
        Ok((status, v)) => (status, axum::Json(v)).into_response(),
        Err(e) => v1_error(&e),
    }
}

/// Admins, or the user itself.
fn admin_or_self(who: &Principal, user: &str) -> Result<(), ServeError> {
    if who.name.eq_ignore_ascii_case(user) {
        Ok(())
    } else {
        who.require_admin("managing another user")
    }
}

async fn body_object(
    server: &Server,
    body: Body,
) -> Result<serde_json::Map<String, Value>, ServeError> {
    let bytes = read_body(body, server.config.max_request_bytes).await?;
    if bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ServeError::BadRequest(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(ServeError::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

fn string_field(
    o: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ServeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ServeError::BadRequest(format!(
            "\"{key}\" must be a string"
        ))),
    }
}

fn roles_field(o: &serde_json::Map<String, Value>) -> Result<Option<Vec<String>>, ServeError> {
    match o.get("roles") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ServeError::BadRequest("\"roles\" must be an array of role names".into())
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ServeError::BadRequest(
            "\"roles\" must be an array of role names".into(),
        )),
    }
}

fn known_fields(o: &serde_json::Map<String, Value>, known: &[&str]) -> Result<(), ServeError> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ServeError::BadRequest(format!(
            "unknown field {k:?} (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `GET /v1/users`: every user and role (no secrets).
pub async fn list(State(server): State<AppState>, Extension(who): Who) -> Response {
    answer((|| {
        who.require_admin("listing users")?;
        let access = server.access()?;
        let users: Vec<Value> = access.roles.values().map(|r| access.describe(r)).collect();
        Ok((StatusCode::OK, json!({ "users": users })))
    })())
}

/// `GET /v1/users/{user}`.
pub async fn show(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(user): Path<String>,
) -> Response {
    answer((|| {
        admin_or_self(&who, &user)?;
        let access = server.access()?;
        let role = access
            .role(&user)
            .ok_or_else(|| ServeError::NotFound(format!("no user {user:?}")))?;
        Ok((StatusCode::OK, access.describe(role)))
    })())
}

/// `POST /v1/users` with `{"name": ..., "password": ..., "roles": ["reader"]}`.
pub async fn create(State(server): State<AppState>, Extension(who): Who, body: Body) -> Response {
    answer(
        async {
            who.require_admin("creating users")?;
            let o = body_object(&server, body).await?;
            known_fields(&o, &["name", "password", "roles"])?;
            let name = string_field(&o, "name")?
                .ok_or_else(|| ServeError::BadRequest("the body needs a \"name\"".into()))?;
            let password = string_field(&o, "password")?
                .ok_or_else(|| ServeError::BadRequest("the body needs a \"password\"".into()))?;
            let roles = roles_field(&o)?.unwrap_or_default();
            let md5 = server.config.pg_auth == "md5";
            let shown = name.clone();
            server
                .change_access(move |a| {
                    if a.role(&name).is_some() {
                        return Err(ServeError::Conflict(format!(
                            "role \"{name}\" already exists"
                        )));
                    }
                    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                    a.upsert_user(&name, &password, &roles, md5)
                })
                .await?;
            let access = server.access()?;
            let role = access
                .role(&shown)
                .ok_or_else(|| ServeError::Internal("the new user is not in the catalog".into()))?;
            Ok((StatusCode::CREATED, access.describe(role)))
        }
        .await,
    )
}

/// `PATCH /v1/users/{user}` with `{"password": ...}` (the user itself or an admin) and/or `{"roles": [...]}`
/// (admins: the user's roles become exactly these).
pub async fn update(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(user): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            admin_or_self(&who, &user)?;
            let o = body_object(&server, body).await?;
            known_fields(&o, &["password", "roles"])?;
            let password = string_field(&o, "password")?;
            let roles = roles_field(&o)?;
            if roles.is_some() {
                who.require_admin("changing a user's roles")?;
            }
            let md5 = server.config.pg_auth == "md5";
            let name = user.clone();
            server
                .change_access(move |a| {
                    let key = name.to_lowercase();
                    if let Some(roles) = &roles {
                        let roles: Vec<String> = roles.iter().map(|r| r.to_lowercase()).collect();
                        if let Some(r) = roles.iter().find(|r| !a.roles.contains_key(*r)) {
                            return Err(ServeError::NotFound(format!("role {r:?} does not exist")));
                        }
                        let role = a
                            .roles
                            .get_mut(&key)
                            .ok_or_else(|| ServeError::NotFound(format!("no user {name:?}")))?;
                        role.member_of = roles.into_iter().collect();
                    }
                    if let Some(pw) = &password {
                        let role = a
                            .roles
                            .get_mut(&key)
                            .filter(|r| r.login)
                            .ok_or_else(|| ServeError::NotFound(format!("no user {name:?}")))?;
                        super::access::Access::set_password(role, pw, md5)?;
                    }
                    a.keep_an_admin()
                })
                .await?;
            let access = server.access()?;
            let role = access
                .role(&user)
                .ok_or_else(|| ServeError::NotFound(format!("no user {user:?}")))?;
            Ok((StatusCode::OK, access.describe(role)))
        }
        .await,
    )
}

/// `DELETE /v1/users/{user}`: as `DROP USER`.
pub async fn drop(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(user): Path<String>,
) -> Response {
    answer(
        async {
            who.require_admin("dropping users")?;
            if BUILTIN_ROLES.contains(&user.to_lowercase().as_str()) {
                return Err(ServeError::BadRequest(format!(
                    "role {user:?} is built in and cannot be dropped"
                )));
            }
            let stmt =
                basalt_query::parse(&format!("DROP ROLE \"{}\"", user.replace('"', "\"\"")))?;
            let by = (*who).clone();
            let md5 = server.config.pg_auth == "md5";
            server
                .change_access(move |a| a.apply(&stmt, &by, md5, &|_| None))
                .await?;
            Ok((StatusCode::OK, json!({ "dropped": user })))
        }
        .await,
    )
}

/// `POST /v1/users/{user}/tokens` with an optional `{"name": "grafana"}`: a new API token, shown only here.
pub async fn new_token(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(user): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            admin_or_self(&who, &user)?;
            let o = body_object(&server, body).await?;
            known_fields(&o, &["name"])?;
            let name = string_field(&o, "name")?.unwrap_or_default();
            let (token, id) = server
                .change_access(move |a| a.new_token(&user, &name))
                .await?;
            Ok((StatusCode::CREATED, json!({ "id": id, "token": token })))
        }
        .await,
    )
}

/// `DELETE /v1/users/{user}/tokens/{id}`: the token stops working at once.
pub async fn revoke_token(
    State(server): State<AppState>,
    Extension(who): Who,
    Path((user, id)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            admin_or_self(&who, &user)?;
            let shown = id.clone();
            let found = server
                .change_access(move |a| Ok(a.revoke_token(&user, &id)))
                .await?;
            if found {
                Ok((StatusCode::OK, json!({ "revoked": shown })))
            } else {
                Err(ServeError::NotFound(format!("no token {shown:?}")))
            }
        }
        .await,
    )
}
