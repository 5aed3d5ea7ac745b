//! Operator tokens: the credential of whoever runs the controller, for the routes above every
//! tenant (creating and listing tenants). Checked on the owner's pool; the application role
//! cannot read the table (migration 0018).

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Store, StoreError, query_error};
use crate::auth;

/// One operator token (never the token itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OperatorToken {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl Store {
    /// A new operator token named `name`; returns the token, which is not stored anywhere.
    pub async fn create_operator_token(&self, name: &str) -> Result<String, StoreError> {
        let token = auth::generate_token(auth::OPERATOR_TOKEN_PREFIX)?;
        sqlx::query("INSERT INTO operator_tokens (id, name, token_hash) VALUES ($1, $2, $3)")
            .bind(Uuid::new_v4())
            .bind(name)
            .bind(auth::hash_token(&token))
            .execute(self.admin())
            .await
            .map_err(query_error("creating an operator token"))?;
        Ok(token)
    }

    pub async fn list_operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError> {
        sqlx::query_as(
            "SELECT id, name, created_at, last_used_at, revoked_at FROM operator_tokens \
             ORDER BY name",
        )
        .fetch_all(self.admin())
        .await
        .map_err(query_error("listing operator tokens"))
    }

    /// Revokes the live operator token `name`; whether there was one.
    pub async fn revoke_operator_token(&self, name: &str) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE operator_tokens SET revoked_at = now() \
             WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .execute(self.admin())
        .await
        .map_err(query_error("revoking an operator token"))?
        .rows_affected();
        Ok(revoked == 1)
    }

    /// The name of a live operator token (recording its use), if `token` is one.
    pub async fn authenticate_operator(&self, token: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "UPDATE operator_tokens SET last_used_at = now() \
             WHERE token_hash = $1 AND revoked_at IS NULL RETURNING name",
        )
        .bind(auth::hash_token(token))
        .fetch_optional(self.admin())
        .await
        .map_err(query_error("authenticating an operator token"))
    }
}
