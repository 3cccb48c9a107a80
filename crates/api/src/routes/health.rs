use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use danbao_persistence::diesel_async::RunQueryDsl;
use danbao_persistence::pool::DbPool;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health)), security(()))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable and every migration has run; so is the read replica, if any.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health), (status = 503, body = Health)), security(()))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = async {
        ready(&state.pool, "database").await?;
        match &state.read_pool {
            Some(replica) => ready(replica, "read replica").await,
            None => Ok(()),
        }
    };
    // A readiness probe must answer promptly even when the database hangs.
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => HttpResponse::Ok().json(Health {
            status: "ok".into(),
        }),
        Ok(Err(why)) => HttpResponse::ServiceUnavailable().json(Health { status: why }),
        Err(_) => HttpResponse::ServiceUnavailable().json(Health {
            status: "database timeout".into(),
        }),
    }
}

/// `which` (the database or the read replica) answers and has every migration.
async fn ready(pool: &DbPool, which: &str) -> Result<(), String> {
    let mut conn = pool
        .get()
        .await
        .map_err(|_| format!("{which} unreachable"))?;
    danbao_persistence::diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|_| format!("{which} unreachable"))?;
    match danbao_persistence::migrate::has_pending(&mut conn).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!("{which}: migrations pending")),
        Err(_) => Err(format!("{which}: migration state unreadable")),
    }
}

/// Prometheus metrics in text format.
#[utoipa::path(tag = "operations", responses((status = 200, content_type = "text/plain", body = String)), security(()))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
