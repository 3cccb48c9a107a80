//! Borrowers (借款人): a person, a partnership led by a person, or a small enterprise. National
//! ids and phone numbers are stored only encrypted, found by a keyed hash, and shown in full
//! only to the borrower's centre and administrators.
use crate::auth::{AuthUser, Role, Scope};
use crate::authz::Placement;
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::{BorrowerCategory, BorrowerKind, NationalId};
use danbao_persistence::diesel::result::{DatabaseErrorKind, Error as DieselError};
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::borrower::BorrowerRow;
use danbao_persistence::repo;
use danbao_persistence::repo::borrower::BorrowerFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(get);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBorrowerBody {
    pub kind: BorrowerKind,
    /// `small_enterprise` exactly when `kind` is `small_enterprise`.
    pub category: BorrowerCategory,
    /// The person's name (for a partnership, its leader's), or the firm's.
    #[schema(min_length = 1, max_length = 200, example = "王建国")]
    pub name: String,
    /// Required for a person or partnership, absent for a small enterprise. Stored encrypted.
    #[schema(pattern = "^[0-9]{17}[0-9Xx]$", example = "11010519491231002X")]
    pub national_id: Option<String>,
    /// 5 to 20 digits, optionally after a `+`. Stored encrypted.
    #[schema(pattern = "^\\+?[0-9]{5,20}$", example = "13800138000")]
    pub phone: Option<String>,
    /// 《再就业优惠证》 or 就业失业登记证 number (persons only).
    #[schema(min_length = 1, max_length = 64)]
    pub employment_certificate_no: Option<String>,
    /// A credit community of the same centre where the borrower lives.
    pub credit_community_id: Option<Uuid>,
    /// Partnership: the number of partners, 2 to 100. Otherwise 1 or absent.
    #[schema(minimum = 1, maximum = 100)]
    pub member_count: Option<i32>,
    /// Small enterprise: its unified social credit code (统一社会信用代码), 18 of 0-9 A-Z.
    #[schema(pattern = "^[0-9A-Za-z]{18}$", example = "91360102MA35L8XK2B")]
    pub enterprise_registration_no: Option<String>,
    /// Small enterprise: employees in all.
    #[schema(minimum = 0, maximum = 100000)]
    pub employees: Option<i32>,
    /// Small enterprise: employees from the eligible groups; at most `employees`.
    #[schema(minimum = 0, maximum = 100000)]
    pub eligible_employees: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct BorrowerView {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub kind: String,
    pub category: String,
    /// In full for the centre and administrators; a supervisor sees a person's family name and
    /// `*` (`王*`).
    pub name: String,
    /// In full for the centre and administrators, masked for supervisors
    /// (`360102********123X`); absent for a small enterprise.
    pub national_id: Option<String>,
    /// For the centre and administrators only.
    pub phone: Option<String>,
    /// For the centre and administrators only.
    pub birth_date: Option<NaiveDate>,
    /// In full for the centre and administrators; supervisors see only its last four characters.
    pub employment_certificate_no: Option<String>,
    pub credit_community_id: Option<Uuid>,
    pub member_count: i32,
    pub enterprise_registration_no: Option<String>,
    pub employees: Option<i32>,
    pub eligible_employees: Option<i32>,
    pub created_at: DateTime<Utc>,
}

fn placement<'a>(b: &BorrowerRow, centre_region: &'a str) -> Placement<'a> {
    Placement {
        centre_id: Some(b.centre_id),
        bank_id: None,
        region_code: Some(centre_region),
    }
}

/// Family name (the first character) and `*`: how supervisors see a person's name.
pub(crate) fn mask_name(name: &str) -> String {
    name.chars().take(1).chain(std::iter::once('*')).collect()
}

/// All but the last four characters as `*`.
fn mask_tail(text: &str) -> String {
    let n = text.chars().count();
    text.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

impl BorrowerView {
    /// The borrower as `user` may see it: personal data in full for the centre's clerks and
    /// administrators, masked or left out for supervisors.
    pub(crate) fn for_user(r: BorrowerRow, user: &AuthUser, state: &AppState) -> ApiResult<Self> {
        let full = matches!(user.role, Role::Clerk | Role::Admin);
        let person = r.kind != BorrowerKind::SmallEnterprise.as_str();
        let decrypt = |blob: &Option<Vec<u8>>| -> ApiResult<Option<String>> {
            blob.as_deref()
                .map(|b| state.pii.decrypt(b).map_err(ApiError::internal))
                .transpose()
        };
        let (name, national_id, phone, birth_date, certificate) = if full {
            (
                r.name,
                decrypt(&r.national_id_enc)?,
                decrypt(&r.phone_enc)?,
                r.birth_date,
                r.employment_certificate_no,
            )
        } else {
            (
                if person { mask_name(&r.name) } else { r.name },
                r.national_id_masked,
                None,
                None,
                r.employment_certificate_no.as_deref().map(mask_tail),
            )
        };
        Ok(BorrowerView {
            id: r.id,
            centre_id: r.centre_id,
            kind: r.kind,
            category: r.category,
            name,
            national_id,
            phone,
            birth_date,
            employment_certificate_no: certificate,
            credit_community_id: r.credit_community_id,
            member_count: r.member_count,
            enterprise_registration_no: r.enterprise_registration_no,
            employees: r.employees,
            eligible_employees: r.eligible_employees,
            created_at: r.created_at,
        })
    }
}

/// Collects every bad field of a request, to answer them all at once.
#[derive(Default)]
struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn absent<T>(&mut self, field: &str, value: &Option<T>, why: &str) {
        if value.is_some() {
            self.add(field, why);
        }
    }

    fn text(&mut self, field: &str, value: &str, max: usize) {
        if let Err(e) = danbao_domain::bounds::check_text(field, value, max) {
            self.add(field, e.message());
        }
    }

    fn into_result(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation_many(self.0))
        }
    }
}

fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or(p);
    (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Most employees a small enterprise may declare (and the `borrowers` table's CHECK).
pub const MAX_EMPLOYEES: i32 = 100_000;

/// The checked content of a registration.
struct Registration {
    national_id: Option<NationalId>,
    member_count: i32,
    enterprise_registration_no: Option<String>,
}

/// Checks a registration against the shape a borrower must have (the `borrowers_kind_shape`
/// rule of the database, and the formats), naming every bad field.
fn validate(body: &NewBorrowerBody, today: NaiveDate) -> ApiResult<Registration> {
    let mut e = FieldErrors::default();
    e.text("name", &body.name, 200);
    let enterprise = body.kind == BorrowerKind::SmallEnterprise;
    if enterprise != (body.category == BorrowerCategory::SmallEnterprise) {
        e.add(
            "category",
            "the category is small_enterprise exactly when the kind is small_enterprise",
        );
    }
    if let Some(p) = &body.phone {
        if !valid_phone(p) {
            e.add("phone", "must be 5 to 20 digits, optionally after a +");
        }
    }
    if let Some(c) = &body.employment_certificate_no {
        e.text("employment_certificate_no", c, 64);
    }
    let mut national_id = None;
    let mut enterprise_registration_no = None;
    let member_count = body.member_count.unwrap_or(1);
    if enterprise {
        let why = "only for a person or partnership, not for a small enterprise";
        e.absent("national_id", &body.national_id, why);
        e.absent(
            "employment_certificate_no",
            &body.employment_certificate_no,
            why,
        );
        if member_count != 1 {
            e.add(
                "member_count",
                "a small enterprise borrows as one (1 or absent)",
            );
        }
        match body.enterprise_registration_no.as_deref() {
            None => e.add(
                "enterprise_registration_no",
                "required for a small enterprise",
            ),
            Some(no) => {
                let no = no.to_ascii_uppercase();
                if no.len() == 18
                    && no
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                {
                    enterprise_registration_no = Some(no);
                } else {
                    e.add(
                        "enterprise_registration_no",
                        "a unified social credit code has 18 characters of 0-9 and A-Z",
                    );
                }
            }
        }
        let employees_bound = format!("must be between 0 and {MAX_EMPLOYEES}");
        match body.employees {
            None => e.add("employees", "required for a small enterprise"),
            Some(n) if !(0..=MAX_EMPLOYEES).contains(&n) => e.add("employees", &employees_bound),
            Some(_) => {}
        }
        match (body.employees, body.eligible_employees) {
            (_, None) => e.add("eligible_employees", "required for a small enterprise"),
            (_, Some(m)) if !(0..=MAX_EMPLOYEES).contains(&m) => {
                e.add("eligible_employees", &employees_bound)
            }
            (Some(n), Some(m)) if m > n => e.add("eligible_employees", "must not exceed employees"),
            _ => {}
        }
    } else {
        let why = "only for a small enterprise";
        e.absent(
            "enterprise_registration_no",
            &body.enterprise_registration_no,
            why,
        );
        e.absent("employees", &body.employees, why);
        e.absent("eligible_employees", &body.eligible_employees, why);
        match body.kind {
            BorrowerKind::Partnership if !(2..=100).contains(&member_count) => e.add(
                "member_count",
                "a partnership has 2 to 100 members (member_count)",
            ),
            BorrowerKind::Individual if member_count != 1 => e.add(
                "member_count",
                "an individual borrows alone (1 or absent); several people borrow as a partnership",
            ),
            _ => {}
        }
        match body.national_id.as_deref().map(NationalId::parse) {
            None => e.add("national_id", "required for a person or partnership"),
            Some(Err(err)) => e.add("national_id", err.message()),
            Some(Ok(id)) => match id.age_on(today) {
                Err(err) => e.add("national_id", err.message()),
                Ok(_) => national_id = Some(id),
            },
        }
    }
    e.into_result()?;
    Ok(Registration {
        national_id,
        member_count,
        enterprise_registration_no,
    })
}

/// 409 for a national id that is already registered, naming the existing borrower only to a
/// caller who may see it.
fn borrower_exists(user: &AuthUser, existing: Option<(BorrowerRow, String)>) -> ApiError {
    match existing {
        Some((b, region)) if user.can_see(&placement(&b, &region)) => ApiError::conflict(
            "borrower_exists",
            format!(
                "a borrower with this national id is already registered: {}",
                b.id
            ),
        ),
        _ => ApiError::conflict(
            "borrower_exists",
            "a borrower with this national id is already registered",
        ),
    }
}

/// Register a borrower of the clerk's centre (clerk).
#[utoipa::path(tag = "borrowers", request_body = NewBorrowerBody, responses(
    (status = 201, body = BorrowerView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, description = "the national id is already registered (`borrower_exists`)", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/borrowers")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewBorrowerBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let Scope::Centre(centre_id) = user.scope else {
        return Err(ApiError::Forbidden);
    };
    let body = body.0;
    let reg = validate(&body, state.today())?;
    let mut conn = state.conn().await?;
    if let Some(c) = body.credit_community_id {
        let same_centre = repo::credit_community::find(&mut conn, c)
            .await?
            .is_some_and(|community| community.centre_id == centre_id);
        if !same_centre {
            return Err(ApiError::validation(
                "credit_community_id",
                "no credit community of your centre has this id",
            ));
        }
    }
    let hmac = reg
        .national_id
        .as_ref()
        .map(|id| state.pii.lookup_hash(id.as_str()));
    if let Some(h) = &hmac {
        if let Some(existing) = repo::borrower::find_by_national_id_hmac(&mut conn, h).await? {
            return Err(borrower_exists(&user, Some(existing)));
        }
    }
    let centre = repo::centre::find(&mut conn, centre_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the clerk's centre does not exist")))?;
    let id = Uuid::now_v7();
    let masked = reg.national_id.as_ref().map(NationalId::masked);
    // No national id, phone or name here: supervisors read the audit log.
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "borrower.registered",
        "borrower",
        id,
        Some(&centre.region_code),
        serde_json::json!({
            "centre_id": centre_id,
            "kind": body.kind.as_str(),
            "category": body.category.as_str(),
            "national_id_masked": masked,
            "credit_community_id": body.credit_community_id,
            "member_count": reg.member_count,
            "enterprise_registration_no": reg.enterprise_registration_no,
        }),
    );
    let new = BorrowerRow {
        id,
        centre_id,
        kind: body.kind.as_str().to_owned(),
        category: body.category.as_str().to_owned(),
        name: body.name.trim().to_owned(),
        national_id_enc: reg
            .national_id
            .as_ref()
            .map(|n| state.pii.encrypt(n.as_str())),
        national_id_hmac: hmac,
        national_id_masked: masked,
        birth_date: reg.national_id.as_ref().map(NationalId::birth_date),
        phone_enc: body.phone.as_deref().map(|p| state.pii.encrypt(p)),
        employment_certificate_no: body
            .employment_certificate_no
            .as_deref()
            .map(|c| c.trim().to_owned()),
        credit_community_id: body.credit_community_id,
        member_count: reg.member_count,
        enterprise_registration_no: reg.enterprise_registration_no,
        employees: body.employees,
        eligible_employees: body.eligible_employees,
        // Not inserted: the database sets it.
        created_at: Utc::now(),
    };
    let inserted = conn
        .transaction::<_, DieselError, _>(async |conn| {
            let row = repo::borrower::insert(conn, &new).await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await;
    let row = match inserted {
        Ok(row) => row,
        // Registered by someone else between the look-up and the insert.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some(repo::borrower::NATIONAL_ID_UNIQUE) =>
        {
            let existing = match &new.national_id_hmac {
                Some(h) => repo::borrower::find_by_national_id_hmac(&mut conn, h).await?,
                None => None,
            };
            return Err(borrower_exists(&user, existing));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Created().json(BorrowerView::for_user(row, &user, &state)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BorrowerQuery {
    /// Only the borrower with this national id (18 characters, check digit verified).
    #[param(pattern = "^[0-9]{17}[0-9Xx]$")]
    pub national_id: Option<String>,
}

/// Borrowers the caller may see: its centre's (clerk), those of centres in its region
/// (supervisor, personal data masked), all (admin).
#[utoipa::path(tag = "borrowers", params(PageParams, BorrowerQuery), responses(
    (status = 200, body = Paged<BorrowerView>),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "invalid national_id", body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/borrowers")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
    query: Query<BorrowerQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let mut filter = match &user.scope {
        Scope::Centre(c) => BorrowerFilter {
            centre_id: Some(*c),
            ..Default::default()
        },
        Scope::Region(r) => BorrowerFilter {
            region_prefix: Some(r.subtree_prefix().to_owned()),
            ..Default::default()
        },
        Scope::All => BorrowerFilter::default(),
        Scope::Bank(_) => return Err(ApiError::Forbidden),
    };
    let (after, limit) = (page.cursor_uuid()?, page.limit()?);
    if let Some(text) = query.national_id.as_deref() {
        let id = NationalId::parse(text.trim())?;
        filter.national_id_hmac = Some(state.pii.lookup_hash(id.as_str()));
    }
    let mut conn = state.read_conn().await?;
    let rows = repo::borrower::list(&mut conn, &filter, after, limit).await?;
    let next_cursor = super::next_cursor(&rows, |(b, _)| b.id.to_string());
    let items = rows
        .items
        .into_iter()
        .map(|(b, _)| BorrowerView::for_user(b, &user, &state))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// One borrower, if within the caller's scope (supervisors see personal data masked).
#[utoipa::path(tag = "borrowers", params(("id" = Uuid, Path)), responses(
    (status = 200, body = BorrowerView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/borrowers/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let mut conn = state.conn().await?;
    let (row, region) = repo::borrower::find_placed(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    user.ensure_visible(&placement(&row, &region))?;
    Ok(HttpResponse::Ok().json(BorrowerView::for_user(row, &user, &state)?))
}
