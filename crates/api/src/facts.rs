//! The facts statistics sum (`instalment_facts`, `principal_payments`), derived from a loan's
//! position with the same code as the API: rewritten for the loan in the transaction of every
//! write that changes its position, and recomputed by `danbao verify`.
use crate::error::{ApiError, ApiResult};
use danbao_domain::{subsidy_of, BorrowerCategory, Position, PrincipalDue, Share};
use danbao_persistence::diesel_async::AsyncPgConnection;
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::stats::{InstalmentFactRow, PrincipalPaymentRow};
use danbao_persistence::repo;
use std::collections::BTreeMap;
use std::str::FromStr;
use uuid::Uuid;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

/// The facts of a loan whose position (over all its repayments) is `pos`.
/// `first_extended`: the first instalment of its extension period, if extended.
pub fn facts_of(
    loan: &LoanRow,
    policy: &PolicyRow,
    first_extended: Option<u32>,
    pos: &Position<Uuid>,
) -> ApiResult<(Vec<InstalmentFactRow>, Vec<PrincipalPaymentRow>)> {
    let share = if loan.micro_profit {
        let category = BorrowerCategory::from_str(&loan.category).map_err(internal)?;
        policy
            .to_domain()
            .map_err(internal)?
            .subsidy_share(category)
    } else {
        Share::ZERO
    };
    let facts = pos
        .instalments
        .iter()
        .map(|i| {
            let extended = first_extended.is_some_and(|f| i.number >= f);
            Ok(InstalmentFactRow {
                loan_id: loan.id,
                number: i32::try_from(i.number).map_err(internal)?,
                due_date: i.due_date,
                principal: i.principal.amount(),
                interest: i.interest.amount(),
                subsidy: if extended {
                    rust_decimal::Decimal::ZERO
                } else {
                    subsidy_of(i.interest, share).amount()
                },
                extended,
                paid_on: i.paid_on,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    type Paid = BTreeMap<(u32, chrono::NaiveDate), (rust_decimal::Decimal, chrono::NaiveDate)>;
    let mut paid: Paid = BTreeMap::new();
    for (i, due) in pos.instalments.iter().zip(PrincipalDue::from_position(pos)) {
        for (date, amount) in due.payments {
            paid.entry((i.number, date))
                .or_insert((rust_decimal::Decimal::ZERO, i.due_date))
                .0 += amount.amount();
        }
    }
    let payments = paid
        .into_iter()
        .filter(|(_, (p, _))| !p.is_zero())
        .map(|((number, value_date), (principal, due_date))| {
            Ok(PrincipalPaymentRow {
                loan_id: loan.id,
                number: i32::try_from(number).map_err(internal)?,
                value_date,
                principal,
                due_date,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((facts, payments))
}

/// Rewrites the loan's facts from its position over all its repayments.
pub async fn refresh(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
    pos: &Position<Uuid>,
) -> ApiResult<()> {
    let loan = repo::loan::find(conn, loan_id)
        .await?
        .ok_or_else(|| internal("loan missing"))?;
    let policy = repo::policy::find(conn, loan.policy_id)
        .await?
        .ok_or_else(|| internal("policy missing"))?;
    let first_extended = if loan.schedule_version > 1 {
        repo::compensation::extension_of(conn, loan.id)
            .await?
            .and_then(|e| u32::try_from(e.first_extended).ok())
    } else {
        None
    };
    let (facts, payments) = facts_of(&loan, &policy, first_extended, pos)?;
    repo::stats::replace_facts(conn, loan.id, &facts, &payments).await?;
    Ok(())
}
