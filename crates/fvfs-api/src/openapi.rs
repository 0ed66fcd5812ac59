//! The OpenAPI 3.1 spec generated from the handlers' `#[utoipa::path]` annotations and
//! the models of `fvfs_types::api`, served at `GET /v1/openapi.json`.
//!
//! Invariant: every route of `routes::router` is listed here with its parameters, body
//! and answers (the answers any route may give are added to each by `CommonResponses`),
//! and every route needs the bearer token (the global security requirement), as
//! docs/API.md says.

use crate::routes::{admin, blocks, files, music, ns, special};
use axum::Json;
use fvfs_types::api::*;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Spec;
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut Spec) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        api.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Answers any operation may give, documented on each (so a client or a fuzzer checking
/// status codes against the spec knows them): no or a bad token, a token or an identity
/// that may not do this, the connection cap or a tier away, an internal failure, and for
/// writes a full storage.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, api: &mut Spec) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let common = [
            ("401", "no token, or an invalid or revoked one"),
            (
                "403",
                "the token (read-only) or its identity may not do this",
            ),
            ("500", "an internal error"),
            ("503", "too many connections, or a tier is unreachable"),
        ];
        for item in api.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.head, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (op, writes) in ops {
                let Some(op) = op.as_mut() else { continue };
                let r = &mut op.responses.responses;
                for (code, what) in common {
                    r.entry(code.to_string())
                        .or_insert_with(|| answer(what).into());
                }
                if writes {
                    r.entry("507".to_string())
                        .or_insert_with(|| answer("no space left on the storage").into());
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "fvfs", description = "The fvfs daemon's HTTP API (docs/API.md)."),
    paths(
        files::get_file, files::head_file, files::put_file, files::delete_file,
        ns::get_meta, ns::patch_meta, ns::list, ns::list_root, ns::mkdir, ns::symlink, ns::rename,
        special::mknod, special::link,
        blocks::manifest, blocks::block,
        admin::status, admin::devices, admin::evict, admin::flush, admin::wal,
        music::search,
        serve, crate::metrics::serve,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, ErrorCode, Kind, Stat, Listing, Piece, Manifest,
        SetAttrRequest, CreateRequest, RenameRequest, MknodRequest, SpecialKind, LinkRequest, TierStatus, Status, Device, Devices,
        WalItem, Wal, EvictResult, FlushResult, CallerInfo, MetaShipping, MusicHit, MusicSearchResult,
    )),
    modifiers(&Security, &CommonResponses),
    tags((name = "files"), (name = "namespace"), (name = "blocks"), (name = "admin"), (name = "music")),
)]
pub struct ApiDoc;

/// The spec as a value.
pub fn spec() -> Spec {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "admin",
    responses((status = 200, description = "the OpenAPI spec", content_type = "application/json")))]
pub async fn serve() -> Json<Spec> {
    Json(spec())
}
