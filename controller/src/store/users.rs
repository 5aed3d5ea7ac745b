//! Console users and their sessions (migration 0019). Users are tenant rows: created, listed
//! and changed in a [`TenantTx`]. Logging in and resolving a session cookie happen before any
//! tenant is known, through two narrow SECURITY DEFINER functions; everything they lead to
//! (recording the attempt, creating the session) runs inside the user's own tenant.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::page::{NameKey, Page};
use super::{Store, StoreError, TenantTx, query_error};
use crate::auth::{self, Scope};
use crate::password;

/// A session lives at most this long, however active.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// …and ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Prefix of session ids (the cookie's value) and CSRF tokens.
const SESSION_PREFIX: &str = "ufs_";
const CSRF_PREFIX: &str = "ufc_";

/// What a user may do: the API's scopes under the names people use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

unity_protocol::word_enum!(Role, UnknownRole, "role", {
    Viewer => "viewer",
    Operator => "operator",
    Admin => "admin",
});

impl Role {
    /// The API scope of the role: the console calls the same routes with it.
    pub fn scope(self) -> Scope {
        match self {
            Role::Viewer => Scope::Read,
            Role::Operator => Scope::Operate,
            Role::Admin => Scope::Admin,
        }
    }
}

/// A user as the API and the CLI show it (never the hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub password_changed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    name: String,
    role: String,
    created_at: OffsetDateTime,
    password_changed_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            name: r.name,
            // The column's CHECK admits only known roles; anything else reads as the least.
            role: r.role.parse().unwrap_or(Role::Viewer),
            created_at: r.created_at,
            password_changed_at: r.password_changed_at,
            disabled_at: r.disabled_at,
        }
    }
}

const USER_COLUMNS: &str = "id, name, role, created_at, password_changed_at, disabled_at";

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user named `{0}` exists already (names are unique on the controller)")]
    NameTaken(String),
    #[error(
        "user name `{0}` is invalid: 1-64 lower-case letters, digits, '.', '_', '@', '+', '-', \
         starting with a letter or digit"
    )]
    InvalidName(String),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(transparent)]
    Randomness(#[from] auth::RandomnessError),
    #[error("hashing a password failed: {0}")]
    Blocking(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_@+".contains(&b))
}

/// Hashes off the async runtime: argon2id is ~20 ms of one core by design.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| UserError::Blocking(e.to_string()))
}

/// Adds a user to the tenant of `tx`.
pub async fn create_user(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    name: &str,
    role: Role,
    password: &str,
) -> Result<User, UserError> {
    if !valid_name(name) {
        return Err(UserError::InvalidName(name.to_owned()));
    }
    password::check(password)?;
    let owned = password.to_owned();
    let phc = blocking(move || password::hash(&owned)).await??;
    let row: Result<UserRow, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, tenant_id, name, password_hash, role) VALUES ($1, $2, $3, $4, $5) \
         RETURNING {USER_COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(tenant_id)
    .bind(name)
    .bind(&phc)
    .bind(role.as_str())
    .fetch_one(&mut **tx)
    .await;
    match row {
        Ok(row) => Ok(row.into()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(UserError::NameTaken(name.to_owned()))
        }
        Err(source) => Err(StoreError::Query {
            action: "adding a user",
            source,
        }
        .into()),
    }
}

/// The tenant's users by name.
pub async fn list_users(tx: &mut TenantTx, page: &Page<NameKey>) -> Result<Vec<User>, StoreError> {
    let after = page.after.as_ref();
    let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE ($1::text IS NULL OR (name, id) > ($1, $2)) \
         ORDER BY name, id LIMIT $3"
    )))
    .bind(after.map(|k| &k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing users"))?;
    Ok(rows.into_iter().map(User::from).collect())
}

pub async fn user_by_name(tx: &mut TenantTx, name: &str) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("looking up a user"))?;
    Ok(row.map(User::from))
}

/// Disables (or enables) user `id`; a disabled user's sessions end with it. The user as it
/// is now, or `None` when the tenant has no such user.
pub async fn set_disabled(
    tx: &mut TenantTx,
    id: Uuid,
    disabled: bool,
) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END, \
             failed_logins = 0, last_failed_at = NULL \
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    )))
    .bind(id)
    .bind(disabled)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("disabling a user"))?;
    if disabled && row.is_some() {
        end_all_sessions(tx, id).await?;
    }
    Ok(row.map(User::from))
}

/// Ends every session of user `id` ("log out everywhere"); how many there were.
pub async fn end_all_sessions(tx: &mut TenantTx, user_id: Uuid) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("ending a user's sessions"))?
        .rows_affected())
}

/// Ends the session whose cookie is `session_id` (logout).
pub async fn end_session(tx: &mut TenantTx, session_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("DELETE FROM user_sessions WHERE id_hash = $1")
        .bind(auth::hash_token(session_id))
        .execute(&mut **tx)
        .await
        .map_err(query_error("ending a session"))?
        .rows_affected()
        == 1)
}

/// Changes user `user_id`'s password after checking the current one, and ends every other
/// session of the user (whoever knew the old password is logged out).
pub async fn change_password(
    tx: &mut TenantTx,
    user_id: Uuid,
    keep_session: Option<&str>,
    current: &str,
    new: &str,
) -> Result<(), UserError> {
    password::check(new)?;
    let phc: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("reading a password hash"))?;
    let (current, phc) = (current.to_owned(), phc.unwrap_or_default());
    if !blocking(move || password::verify(&current, &phc)).await? {
        return Err(UserError::WrongPassword);
    }
    let new = new.to_owned();
    let phc = blocking(move || password::hash(&new)).await??;
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(&phc)
        .execute(&mut **tx)
        .await
        .map_err(query_error("changing a password"))?;
    sqlx::query(
        "DELETE FROM user_sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR id_hash <> $2)",
    )
    .bind(user_id)
    .bind(keep_session.map(auth::hash_token))
    .execute(&mut **tx)
    .await
    .map_err(query_error("ending a user's other sessions"))?;
    Ok(())
}

/// A live session: who, in which tenant, with what role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub role: Role,
    /// To be sent back with every state-changing request.
    pub csrf_token: String,
}

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Logged in: the cookie's value (shown to the browser only) and the session.
    Ok {
        session_id: String,
        user: SessionUser,
    },
    /// Unknown name, wrong password or disabled user: one answer for all three.
    Refused,
    /// Too many failures in a row: try again after this long.
    Throttled { retry_after: Duration },
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    tenant_id: Uuid,
    password_hash: String,
    role: String,
    disabled: bool,
    failed_logins: i32,
    last_failed_at: Option<OffsetDateTime>,
}

impl Store {
    /// Checks `name` and `password` at `now`; on success creates a session.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Login, UserError> {
        let row: Option<LoginRow> = sqlx::query_as(
            "SELECT id, tenant_id, password_hash, role, disabled, failed_logins, last_failed_at \
             FROM unity_user_for_login($1)",
        )
        .bind(name)
        .fetch_optional(self.app())
        .await
        .map_err(query_error("looking up a login"))?;
        let Some(row) = row else {
            // The same work as a wrong password: no telling names apart by time.
            let attempt = password.to_owned();
            blocking(move || password::verify(&attempt, password::dummy_hash())).await?;
            return Ok(Login::Refused);
        };
        if let Some(retry_after) =
            password::wait_before_login(row.failed_logins, row.last_failed_at, now)
        {
            return Ok(Login::Throttled { retry_after });
        }
        let (attempt, phc) = (password.to_owned(), row.password_hash.clone());
        let matches = blocking(move || password::verify(&attempt, &phc)).await?;
        let mut tx = self.tenant_tx(row.tenant_id).await?;
        if !matches || row.disabled {
            sqlx::query(
                "UPDATE users SET failed_logins = failed_logins + 1, last_failed_at = $2 \
                 WHERE id = $1",
            )
            .bind(row.id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording a failed login"))?;
            tx.commit()
                .await
                .map_err(query_error("recording a failed login"))?;
            return Ok(Login::Refused);
        }
        sqlx::query("UPDATE users SET failed_logins = 0, last_failed_at = NULL WHERE id = $1")
            .bind(row.id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording a login"))?;
        let session_id = auth::generate_token(SESSION_PREFIX)?;
        let csrf_token = auth::generate_token(CSRF_PREFIX)?;
        let expires_at = now + time::Duration::try_from(SESSION_LIFETIME).unwrap_or_default();
        sqlx::query(
            "INSERT INTO user_sessions (id_hash, user_id, tenant_id, csrf_token, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(auth::hash_token(&session_id))
        .bind(row.id)
        .bind(row.tenant_id)
        .bind(&csrf_token)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(query_error("creating a session"))?;
        tx.commit()
            .await
            .map_err(query_error("creating a session"))?;
        Ok(Login::Ok {
            session_id,
            user: SessionUser {
                user_id: row.id,
                tenant_id: row.tenant_id,
                name: name.to_owned(),
                role: row.role.parse().unwrap_or(Role::Viewer),
                csrf_token,
            },
        })
    }

    /// The live session a cookie names (its use recorded), if any.
    pub async fn session(&self, session_id: &str) -> Result<Option<SessionUser>, StoreError> {
        // Whole hours: no conversion can fail.
        let idle = sqlx::postgres::types::PgInterval {
            months: 0,
            days: 0,
            microseconds: i64::try_from(SESSION_IDLE.as_micros()).unwrap_or(i64::MAX),
        };
        let row: Option<(Uuid, Uuid, String, String, String)> = sqlx::query_as(
            "SELECT user_id, tenant_id, name, role, csrf_token FROM unity_session($1, $2)",
        )
        .bind(auth::hash_token(session_id))
        .bind(idle)
        .fetch_optional(self.app())
        .await
        .map_err(query_error("looking up a session"))?;
        Ok(
            row.map(|(user_id, tenant_id, name, role, csrf_token)| SessionUser {
                user_id,
                tenant_id,
                name,
                role: role.parse().unwrap_or(Role::Viewer),
                csrf_token,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles() {
        for ok in ["alice", "bob.smith", "ops@example.net", "a+b", "7"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Alice", ".a", "a b", "ä", &"a".repeat(65), "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!("operator".parse::<Role>().unwrap().scope(), Scope::Operate);
        assert!("root".parse::<Role>().is_err());
    }
}
