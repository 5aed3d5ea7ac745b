//! Tenants, API tokens and enrollment tokens.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::page::Page;
use super::{Store, StoreError, query_error};
use crate::auth::{self, Scope};

/// The holder of an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub tenant_id: Uuid,
    pub scope: Scope,
    /// The token's name, recorded as who asked for a job.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Shortest and longest life of an enrollment token: a token that expires before anyone can
/// type it is useless, one that lives for months is a standing credential.
pub const MIN_ENROLLMENT_TTL: std::time::Duration = std::time::Duration::from_secs(60);
pub const MAX_ENROLLMENT_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// What happened to a presented enrollment token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentTokenOutcome {
    /// Valid; now consumed. The host belongs to this tenant.
    Accepted {
        tenant_id: Uuid,
    },
    Unknown,
    Expired,
    AlreadyUsed,
}

fn valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Store {
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        if !valid_tenant_name(name) {
            return Err(StoreError::InvalidTenantName {
                name: name.to_owned(),
            });
        }
        sqlx::query_as::<_, Tenant>(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(name)
        .fetch_optional(self.admin())
        .await
        .map_err(query_error("creating a tenant"))?
        .ok_or_else(|| StoreError::TenantExists {
            name: name.to_owned(),
        })
    }

    /// Tenants by name, a page at a time (the CLI asks for [`Page::all`], the operator's
    /// `GET /api/v1/tenants` for pages).
    pub async fn list_tenants(&self, page: &Page<String>) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query_as::<_, Tenant>(
            "SELECT id, name, created_at FROM tenants \
             WHERE $1::text IS NULL OR name > $1 ORDER BY name LIMIT $2",
        )
        .bind(page.after.as_deref())
        .bind(page.fetch_limit())
        .fetch_all(self.admin())
        .await
        .map_err(query_error("listing tenants"))
    }

    /// Tenants and active hosts across all tenants, for operators' summaries (restore).
    pub async fn inventory_counts(&self) -> Result<(i64, i64), StoreError> {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenants), \
                    (SELECT count(*) FROM hosts WHERE revoked_at IS NULL)",
        )
        .fetch_one(self.admin())
        .await
        .map_err(query_error("counting tenants and hosts"))
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Tenant, StoreError> {
        sqlx::query_as::<_, Tenant>("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(self.admin())
            .await
            .map_err(query_error("looking up a tenant"))?
            .ok_or_else(|| StoreError::TenantNotFound {
                name: name.to_owned(),
            })
    }

    /// Creates a read-only API token for `tenant_id`; returns the token, which is not stored
    /// anywhere.
    pub async fn create_api_token(
        &self,
        tenant_id: Uuid,
        name: &str,
    ) -> Result<String, StoreError> {
        self.create_scoped_api_token(tenant_id, name, Scope::Read)
            .await
    }

    /// Creates an API token with `scope`.
    pub async fn create_scoped_api_token(
        &self,
        tenant_id: Uuid,
        name: &str,
        scope: Scope,
    ) -> Result<String, StoreError> {
        let token = auth::generate_token(auth::API_TOKEN_PREFIX)?;
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash, scope) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::new_v4())
        .bind(tenant_id)
        .bind(name)
        .bind(auth::hash_token(&token))
        .bind(scope.as_str())
        .execute(self.admin())
        .await
        .map_err(query_error("creating an API token"))?;
        Ok(token)
    }

    /// Creates a single-use enrollment token valid for `ttl`.
    pub async fn create_enrollment_token(
        &self,
        tenant_id: Uuid,
        ttl: std::time::Duration,
    ) -> Result<(String, OffsetDateTime), StoreError> {
        if ttl < MIN_ENROLLMENT_TTL || ttl > MAX_ENROLLMENT_TTL {
            return Err(StoreError::InvalidTtl {
                ttl_secs: ttl.as_secs(),
            });
        }
        let token = auth::generate_token(auth::ENROLLMENT_TOKEN_PREFIX)?;
        let expires_at = OffsetDateTime::now_utc()
            + time::Duration::try_from(ttl).unwrap_or(time::Duration::HOUR);
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, tenant_id, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(tenant_id)
        .bind(auth::hash_token(&token))
        .bind(expires_at)
        .execute(self.admin())
        .await
        .map_err(query_error("creating an enrollment token"))?;
        Ok((token, expires_at))
    }

    /// The tenant of a live API token, if any.
    pub async fn authenticate_api_token(&self, token: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .authenticate_api_caller(token)
            .await?
            .map(|c| c.tenant_id))
    }

    /// Who a live API token is: tenant, scope and name.
    pub async fn authenticate_api_caller(
        &self,
        token: &str,
    ) -> Result<Option<ApiCaller>, StoreError> {
        let row: Option<(Uuid, String, String)> = sqlx::query_as(
            "SELECT tenant, scope, name FROM unity_authenticate_api_token_scoped($1)",
        )
        .bind(auth::hash_token(token))
        .fetch_optional(self.app())
        .await
        .map_err(query_error("authenticating an API token"))?;
        Ok(row.map(|(tenant_id, scope, name)| ApiCaller {
            tenant_id,
            // The column's CHECK allows only known scopes; anything else reads as the least.
            scope: scope.parse().unwrap_or(Scope::Read),
            name,
        }))
    }
}

/// Consumes an enrollment token for the host about to be created with `host_id`, inside `tx`:
/// if the transaction rolls back, the token stays unspent.
pub async fn consume_enrollment_token(
    tx: &mut super::TenantTx,
    token: &str,
    host_id: Uuid,
) -> Result<EnrollmentTokenOutcome, StoreError> {
    let (status, tenant): (String, Option<Uuid>) =
        sqlx::query_as("SELECT status, tenant FROM unity_consume_enrollment_token($1, $2)")
            .bind(auth::hash_token(token))
            .bind(host_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(query_error("consuming an enrollment token"))?;
    Ok(match (status.as_str(), tenant) {
        ("ok", Some(tenant_id)) => EnrollmentTokenOutcome::Accepted { tenant_id },
        ("expired", _) => EnrollmentTokenOutcome::Expired,
        ("used", _) => EnrollmentTokenOutcome::AlreadyUsed,
        _ => EnrollmentTokenOutcome::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::valid_tenant_name;

    #[test]
    fn tenant_names() {
        for ok in ["homelab", "a", "mum-and-dad", "x_1", &"a".repeat(63)] {
            assert!(valid_tenant_name(ok), "{ok}");
        }
        for bad in ["", "-a", "Homelab", "a b", "ä", &"a".repeat(64), "a/b"] {
            assert!(!valid_tenant_name(bad), "{bad}");
        }
    }
}
