//! The OpenAPI document served at `/api/v1/openapi.json`, generated from the handlers.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Unity Fleet controller API", description = "Hosts, disks, pools, arrays, containers, images, databases and package updates of one tenant, and the signed jobs that act on them. Authenticate with `Authorization: Bearer <tenant API token>` (the `/api/v1/tenants` routes: the controller operator's token)."),
    paths(
        super::healthz,
        super::readyz,
        super::operator::list_tenants,
        super::operator::create_tenant,
        super::hosts::list_hosts,
        super::hosts::get_host,
        super::hosts::revoke_host,
        super::hosts::delete_host,
        super::storage::host_storage,
        super::packages::host_packages,
        super::packages::agent_releases,
        super::admin::list_tokens,
        super::admin::create_token,
        super::admin::revoke_token,
        super::admin::create_enrollment_token,
        super::users::list_users,
        super::users::create_user,
        super::users::disable_user,
        super::users::enable_user,
        super::metrics::controller_metrics,
        super::metrics::fleet_metrics,
        super::notify::create_channel,
        super::notify::list_channels,
        super::notify::get_channel,
        super::notify::delete_channel,
        super::notify::test_channel,
        super::notify::put_routing,
        super::notify::list_notifications,
        super::notify::get_notification,
        super::notify::retry_notification,
        super::rollouts::get_labels,
        super::rollouts::put_labels,
        super::rollouts::create,
        super::rollouts::list,
        super::rollouts::get,
        super::rollouts::pause,
        super::rollouts::resume,
        super::rollouts::abort,
        super::rollouts::create_schedule,
        super::rollouts::list_schedules,
        super::rollouts::delete_schedule,
        super::storage::list_disks,
        super::storage::get_disk,
        super::storage::list_pools,
        super::storage::get_pool,
        super::storage::list_arrays,
        super::storage::get_array,
        super::storage::list_alerts,
        super::storage::acknowledge_alert,
        super::inventory::host_inventory,
        super::inventory::list_containers,
        super::inventory::get_container,
        super::inventory::list_images,
        super::inventory::list_databases,
        super::inventory::get_database,
        super::jobs::create_job,
        super::jobs::list_jobs,
        super::jobs::get_job,
        super::jobs::cancel_job,
        super::policies::get_policy,
        super::policies::put_policy,
        super::policies::delete_policy,
        super::policies::list_windows,
        super::policies::create_window,
        super::policies::get_window,
        super::policies::delete_window,
    ),
    components(schemas(super::ErrorBody, super::Health)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Every route behind a token answers 401 to a missing or wrong one and 403 to a token
        // of the other kind (operator vs tenant), whether or not its own annotation says so
        // (schemathesis found routes that did not).
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                if !secured {
                    continue;
                }
                for (status, description) in [
                    ("401", "Missing or invalid token"),
                    (
                        "403",
                        "A token of the wrong kind, or without the scope needed",
                    ),
                ] {
                    if operation.responses.responses.contains_key(status) {
                        continue;
                    }
                    operation.responses.responses.insert(
                        status.into(),
                        utoipa::openapi::RefOr::T(
                            utoipa::openapi::ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    utoipa::openapi::ContentBuilder::new()
                                        .schema(Some(utoipa::openapi::Ref::from_schema_name(
                                            "ErrorBody",
                                        )))
                                        .build(),
                                )
                                .build(),
                        ),
                    );
                }
            }
        }
    }
}

pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
