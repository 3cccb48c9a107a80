use crate::auth::{AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::bank::{BankRow, NewBank};
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBankBody {
    /// Short code used in files and on the command line (`import-repayments --bank CODE`).
    #[schema(pattern = "^[A-Z0-9][A-Z0-9_-]{1,31}$", example = "JXRCU")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200, example = "江西省农村信用社联合社")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct BankView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<BankRow> for BankView {
    fn from(r: BankRow) -> Self {
        BankView {
            id: r.id,
            code: r.code,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

fn valid_code(c: &str) -> bool {
    let b = c.as_bytes();
    (2..=32).contains(&b.len())
        && b[0].is_ascii_uppercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|x| x.is_ascii_uppercase() || x.is_ascii_digit() || *x == b'_' || *x == b'-')
}

/// Register a lending bank (admin).
#[utoipa::path(tag = "banks", request_body = NewBankBody, responses(
    (status = 201, body = BankView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/banks")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewBankBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    if !valid_code(&body.code) {
        return Err(ApiError::validation(
            "code",
            "2 to 32 of A-Z, 0-9, '_' and '-', starting with a letter or digit",
        ));
    }
    super::regions::check_name("name", &body.name, 200)?;
    let id = Uuid::now_v7();
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "bank.created",
        "bank",
        id,
        None,
        serde_json::json!({ "code": body.code, "name": body.name.trim() }),
    );
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::bank::insert(
                conn,
                &NewBank {
                    id,
                    code: &body.code,
                    name: body.name.trim(),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(BankView::from(row)))
}

/// All lending banks (any authenticated caller).
#[utoipa::path(tag = "banks", params(PageParams), responses((status = 200, body = Paged<BankView>)))]
#[get("/banks")]
pub async fn list(
    state: web::Data<AppState>,
    _user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let rows = repo::bank::list(&mut conn, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(BankView::from).collect(),
        next_cursor,
    }))
}

/// One bank.
#[utoipa::path(tag = "banks", params(("id" = Uuid, Path)), responses(
    (status = 200, body = BankView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/banks/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let row = repo::bank::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(BankView::from(row)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bank_codes() {
        assert!(super::valid_code("JXRCU"));
        assert!(super::valid_code("ABC_1-2"));
        assert!(!super::valid_code("a"));
        assert!(!super::valid_code("lower"));
        assert!(!super::valid_code("-ABC"));
    }
}
