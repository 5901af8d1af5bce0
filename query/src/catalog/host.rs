//! Tables that the process hosting the engine supplies under schema `sys` (the server's running queries and its
//! query log): the engine asks for their rows only when a statement names one, and queries them like any other
//! in-memory table. The host also names its users and roles, which `pg_catalog` lists.

use arrow_array::RecordBatch;

/// A user or role of the host, as `pg_catalog.pg_roles` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRole {
    pub name: String,
    /// Has every privilege (directly or through a role it is a member of).
    pub superuser: bool,
    /// A user: may log in.
    pub login: bool,
    /// The roles it is a direct member of.
    pub member_of: Vec<String>,
}

/// The host's tables, by name within schema `sys`.
pub trait HostTables: Send + Sync + std::fmt::Debug {
    /// The table names, without the schema (`queries` for `sys.queries`).
    fn names(&self) -> &'static [&'static str];
    /// The rows of table `name` (without the schema) as of now; `None` for an unknown name.
    fn batch(&self, name: &str) -> Option<RecordBatch>;
    /// The host's users and roles, for `pg_roles`, `pg_user` and `pg_auth_members`; empty when it has none
    /// (then the session's user is the one role).
    fn roles(&self) -> Vec<HostRole> {
        Vec::new()
    }
}
