//! One file per resource. `v1` mounts them under `/v1`; `mount` adds the unversioned ones.
pub mod audit_events;
pub mod auth;
pub mod bank_clients;
pub mod banks;
pub mod borrowers;
pub mod centres;
pub mod compensation;
pub mod credit_communities;
pub mod funds;
pub mod health;
pub mod loans;
pub mod me;
pub mod policies;
pub mod regions;
pub mod repayment_batches;
pub mod repayments;
pub mod stats;
pub mod subsidies;
pub mod users;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn v1(cfg: &mut ServiceConfig) {
    cfg.service(auth::issue_token)
        .service(me::get_me)
        .service(me::change_password)
        .service(regions::create)
        .service(regions::list)
        .service(regions::get)
        .service(centres::create)
        .service(centres::list)
        .service(centres::get)
        .service(banks::create)
        .service(banks::list)
        .service(banks::get)
        .service(users::create)
        .service(users::list)
        .service(users::get)
        .service(users::deactivate)
        .service(users::activate)
        .service(bank_clients::create)
        .service(bank_clients::list)
        .service(bank_clients::revoke)
        .service(policies::create)
        .service(policies::load_presets)
        .service(policies::list)
        .service(policies::get)
        .service(audit_events::list)
        .configure(funds::configure)
        .configure(credit_communities::configure)
        .configure(borrowers::configure)
        .configure(loans::configure)
        .configure(repayments::configure)
        .configure(compensation::configure)
        .service(subsidies::report)
        .configure(stats::configure)
        .service(repayment_batches::create)
        .service(repayment_batches::get);
}

pub fn unversioned(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics);
}

/// Cursor of the next page from the last item, when there is one.
pub fn next_cursor<T>(
    page: &danbao_persistence::repo::Page<T>,
    key: impl Fn(&T) -> String,
) -> Option<String> {
    if page.has_more {
        page.items.last().map(key)
    } else {
        None
    }
}
