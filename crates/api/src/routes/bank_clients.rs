use crate::auth::{hash_password, random_secret, AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::bank_client::{BankClientRow, NewBankClient};
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBankClientBody {
    pub bank_id: Uuid,
    #[schema(min_length = 1, max_length = 200, example = "nightly repayment upload")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct BankClientView {
    pub id: Uuid,
    pub client_id: String,
    pub bank_id: Uuid,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// Shown once, in the answer that created the client; only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<BankClientRow> for BankClientView {
    fn from(r: BankClientRow) -> Self {
        BankClientView {
            id: r.id,
            client_id: r.client_id,
            bank_id: r.bank_id,
            name: r.name,
            active: r.active,
            created_at: r.created_at,
            client_secret: None,
        }
    }
}

/// Machine credentials for a bank's system (admin). The secret is in this answer only.
#[utoipa::path(tag = "bank-clients", request_body = NewBankClientBody, responses(
    (status = 201, body = BankClientView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/bank-clients")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewBankClientBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    super::regions::check_name("name", &body.name, 200)?;
    let id = Uuid::now_v7();
    let client_id = format!("bc-{}", &random_secret(8));
    let secret = random_secret(24);
    let s = secret.clone();
    let hash = crate::auth::hashing(move || hash_password(&s))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let event = Audit { principal: &user, request_id: &rid }.event(
        "bank_client.created",
        "bank_client",
        id,
        None,
        serde_json::json!({ "bank_id": body.bank_id, "client_id": client_id, "name": body.name.trim() }),
    );
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::bank_client::insert(
                conn,
                &NewBankClient {
                    id,
                    client_id: &client_id,
                    secret_hash: &hash,
                    bank_id: body.bank_id,
                    name: body.name.trim(),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    let mut view = BankClientView::from(row);
    view.client_secret = Some(secret);
    Ok(HttpResponse::Created().json(view))
}

/// Bank clients, without secrets (admin).
#[utoipa::path(tag = "bank-clients", params(PageParams), responses(
    (status = 200, body = Paged<BankClientView>),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/bank-clients")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let mut conn = state.conn().await?;
    let rows = repo::bank_client::list(&mut conn, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(BankClientView::from).collect(),
        next_cursor,
    }))
}

/// Revoke a bank client (admin): it can no longer get tokens, and the tokens it holds stop
/// working (at once on this server, within half a minute on the others).
#[utoipa::path(tag = "bank-clients", params(("id" = Uuid, Path)), responses(
    (status = 200, body = BankClientView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/bank-clients/{id}/revocation")]
pub async fn revoke(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let id = *id;
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "bank_client.revoked",
        "bank_client",
        id,
        None,
        serde_json::json!({}),
    );
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::bank_client::set_active(conn, id, false)
                .await?
                .ok_or(ApiError::NotFound)?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    state.active.forget(id);
    Ok(HttpResponse::Ok().json(BankClientView::from(row)))
}
