//! `GET /api/docs`: a browsable API reference (Redoc) over `/api/v1/openapi.json`. Its
//! script is built into the binary (vendored from the `redoc` npm package, version and
//! digest in `controller/assets/redoc/MANIFEST`), so the page works on a homelab network
//! without internet; the page loads nothing from anywhere else.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const REDOC: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unity Fleet API</title>
<style>body { margin: 0; }</style>
</head>
<body>
<redoc spec-url="/api/v1/openapi.json" hide-download-button="false"></redoc>
<script src="/api/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

pub async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC,
    )
        .into_response()
}
