//! A loan's position (贷款状态) from its fixed schedule and its repayments: what is paid, what
//! is owed, what is overdue, and where each repayment went.
//!
//! [`allocate`] is a pure function of the schedule and the repayments that count, so a
//! reversal (冲正) or a backdated repayment is handled by calling it again without (or with) that
//! repayment: the position is always recomputed from the start, never patched.
//!
//! # The rules, precisely
//!
//! * **Order.** Repayments are applied in value-date order; repayments with the same value date
//!   in the order given (booking order). Allocation depends on *when* money arrived, not on when
//!   the bank reported it. Repayments dated after `as_of` do not count yet.
//! * **Due.** An instalment is *due* on and after its due date and *overdue* (past due) after
//!   it: paid on the due date is on time, `days_past_due = as_of − due_date`.
//! * **Allocation** (domain.md: "the oldest due instalment first; within it: penalty interest,
//!   interest, principal"). A repayment on day `t` pays each instalment due by `t`, oldest
//!   first: its penalty interest accrued to `t`, then its interest, then its principal. Then,
//!   with what is left (an *early repayment*, 提前还款), the interest of the current period
//!   accrued to `t` (see below), then principal of the instalments not yet due, **from the last
//!   instalment backwards**. Anything left after that is more than everything owed: the
//!   repayment is refused with the rule `overpayment` (field `amount`); no credit balance is
//!   ever kept.
//! * **Why backwards** (缩短期限, shortening the term): the borrower keeps the regular
//!   instalments of the schedule, so a guaranteed loan keeps being tested every period (paying
//!   ahead cannot hide a borrower who stops paying), maturity comes sooner and the guarantee's
//!   exposure shrinks at once. Because prepaid principal always comes off the end, the principal
//!   outstanding during any later period is simply the scheduled outstanding minus everything
//!   prepaid so far.
//! * **Interest after an early repayment.** Interest stops on prepaid principal from the value
//!   date (算头不算尾: the start day counts, the end day does not). Each instalment's interest is
//!   its scheduled interest scaled by the principal actually outstanding, day by day, over its
//!   period: `interest = round(scheduled × Σ_days outstanding / (scheduled outstanding × days
//!   of the period))`. Without early repayment this is exactly the scheduled interest; it needs
//!   neither the rate nor the convention (it inherits both from the schedule), and it is exact
//!   for every schedule method because each computes a period's interest on the outstanding
//!   principal. The period of instalment k runs from the previous due date (the disbursement
//!   date for the first) to its own due date. For a period not yet over, [`Position`] shows the
//!   interest assuming no further early repayment.
//! * **Accrued interest of the current period** is paid first out of an early repayment and is
//!   part of the payoff amount: otherwise a bullet loan (利随本清) paid off the day before
//!   maturity would pay no interest at all. What is paid then counts as interest paid on the
//!   current instalment; the rest of its interest (on the reduced principal) falls due on its due
//!   date as usual.
//! * **Penalty interest** (罚息) accrues per instalment on its overdue principal (principal
//!   past its due date and unpaid), at `penalty_rate` (annual; the caller passes
//!   `policy.penalty_rate(loan_rate)`, i.e. loan rate × `penalty_rate_multiplier`), actual
//!   days / 360, from the due date until paid (or `as_of`): principal unpaid on days
//!   `[due_date, t)`. An instalment's penalty is `round(penalty_rate × Σ overdue principal ×
//!   days / 360)`, rounded once on the running total, so paying in several parts never changes
//!   the total. No penalty on unpaid interest (复利 is not charged) and no grace days (grace days
//!   only count for the on-time repayment rate).
//! * **Payoff amount** as of a day: outstanding principal + interest of the instalments due by
//!   then + the current period's interest accrued to then + accrued penalty interest. A
//!   repayment of exactly that amount settles the loan; one fen more is an overpayment.
//! * **Settled** when nothing is owed; `paid_on` of an instalment is the value date of the
//!   repayment after which nothing was owed on it.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::fen::{self, days, div_round, mul, mul_div_round};
use crate::overdue::days_past_due;
use crate::{DomainError, Instalment, Money};

/// Penalty interest counts actual days / 360.
const DAY_COUNT_BASIS: i128 = 360;

/// Money from the borrower, as the bank reports it. `K` is the caller's key (a row id, a UUID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repayment<K> {
    pub id: K,
    /// The day the money was paid (起息日), not the day it was reported.
    pub value_date: NaiveDate,
    /// Positive.
    pub amount: Money,
}

/// Where one repayment went, per instalment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocationPart {
    /// The instalment's number.
    pub number: u32,
    pub to_penalty: Money,
    pub to_interest: Money,
    pub to_principal: Money,
    /// True when paid before the instalment's due date (an early repayment).
    pub early: bool,
}

/// Where one repayment went: `to_penalty + to_interest + to_principal = amount`, and the parts
/// add up to those three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation<K> {
    pub repayment_id: K,
    pub value_date: NaiveDate,
    pub amount: Money,
    pub to_penalty: Money,
    pub to_interest: Money,
    pub to_principal: Money,
    /// By instalment number, ascending.
    pub parts: Vec<AllocationPart>,
}

/// One instalment as of the position's date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalmentPosition {
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    /// The interest of the schedule.
    pub scheduled_interest: Money,
    /// The interest owed for this period: `scheduled_interest` reduced for principal repaid
    /// early. For a period not yet over, assuming no further early repayment.
    pub interest: Money,
    pub principal_paid: Money,
    pub interest_paid: Money,
    /// Penalty interest accrued on this instalment's overdue principal up to `as_of`, paid or
    /// not.
    pub penalty: Money,
    pub penalty_paid: Money,
    /// The value date of the repayment after which nothing was owed on this instalment.
    pub paid_on: Option<NaiveDate>,
    /// Days past due as of `as_of`; 0 once paid and up to the due date.
    pub days_past_due: u32,
}

impl InstalmentPosition {
    /// Principal not yet paid.
    pub fn principal_unpaid(&self) -> Money {
        self.principal.saturating_sub(self.principal_paid)
    }

    /// Interest not yet paid (of `interest`).
    pub fn interest_unpaid(&self) -> Money {
        self.interest.saturating_sub(self.interest_paid)
    }

    /// Penalty interest accrued and not yet paid.
    pub fn penalty_unpaid(&self) -> Money {
        self.penalty.saturating_sub(self.penalty_paid)
    }
}

/// A loan's position as of a day.
///
/// Always `outstanding_principal = principal − principal_paid`,
/// `payoff_amount = outstanding_principal + due_interest + accrued_interest + accrued_penalty`,
/// `due_* ≥ overdue_*`, and `settled ⇔ payoff_amount = 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position<K> {
    pub as_of: NaiveDate,
    /// The loan's principal (sum of the schedule).
    pub principal: Money,
    pub principal_paid: Money,
    pub interest_paid: Money,
    pub penalty_paid: Money,
    pub outstanding_principal: Money,
    /// Unpaid principal of instalments due on or before `as_of`.
    pub due_principal: Money,
    /// Unpaid interest of instalments due on or before `as_of`.
    pub due_interest: Money,
    /// Unpaid principal of instalments past due (due before `as_of`).
    pub overdue_principal: Money,
    /// Unpaid interest of instalments past due (due before `as_of`).
    pub overdue_interest: Money,
    /// Interest of the current (not yet due) period accrued up to `as_of` and not yet paid.
    pub accrued_interest: Money,
    /// Penalty interest accrued up to `as_of` and not yet paid.
    pub accrued_penalty: Money,
    /// What a repayment dated `as_of` may at most be; it settles the loan.
    pub payoff_amount: Money,
    /// Days past due of the oldest instalment past due and unpaid; 0 if none.
    pub days_past_due: u32,
    pub settled: bool,
    /// The value date of the repayment that settled the loan.
    pub settled_on: Option<NaiveDate>,
    pub instalments: Vec<InstalmentPosition>,
    /// One per repayment that counts, in the order applied (value date, then booking order).
    pub allocations: Vec<Allocation<K>>,
}

impl<K> Position<K> {
    /// The instalment with this number.
    pub fn instalment(&self, number: u32) -> Option<&InstalmentPosition> {
        self.instalments.iter().find(|i| i.number == number)
    }
}

/// Computes the position as of `as_of` of a loan disbursed on `start` with `schedule`, from
/// the `repayments` that count (reversed ones left out by the caller), in booking order.
/// `penalty_rate` is the annual penalty interest rate (`policy.penalty_rate(loan_rate)`). See
/// the module documentation for the rules.
///
/// Errors: `invalid` for a malformed schedule (field `schedule`), a negative penalty rate, a
/// repayment of zero (field `amount`) or dated before `start` (field `value_date`), or `as_of`
/// before `start`; the rule `overpayment` (field `amount`) when a repayment is more than
/// everything owed on its value date — with a backdated repayment that may be a later one.
pub fn allocate<K: Clone + Display>(
    start: NaiveDate,
    schedule: &[Instalment],
    penalty_rate: Decimal,
    repayments: &[Repayment<K>],
    as_of: NaiveDate,
) -> Result<Position<K>, DomainError> {
    if penalty_rate.is_sign_negative() && !penalty_rate.is_zero() {
        return Err(DomainError::invalid("penalty_rate", "must not be negative"));
    }
    if as_of < start {
        return Err(DomainError::invalid(
            "as_of",
            format!("{as_of} is before the disbursement on {start}"),
        ));
    }
    let replay = Replay::applied(start, schedule, penalty_rate, repayments, Some(as_of))?;
    replay.engine.position(as_of, replay.allocations)
}

/// A loan's repayments applied in value-date order, to which a repayment dated on or after all
/// of them can be added without applying them all again: a repayment file brings many rows of
/// one loan, and each used to replay the loan's whole history twice. An earlier repayment's
/// allocation never depends on a later one, so adding at the end gives exactly what
/// [`allocate`] gives for all of them.
#[derive(Debug, Clone)]
pub struct Replay<K> {
    engine: Engine,
    start: NaiveDate,
    allocations: Vec<Allocation<K>>,
}

impl<K: Clone + Display> Replay<K> {
    /// Every one of `repayments` applied (whatever its date); errors as [`allocate`]'s.
    pub fn new(
        start: NaiveDate,
        schedule: &[Instalment],
        penalty_rate: Decimal,
        repayments: &[Repayment<K>],
    ) -> Result<Self, DomainError> {
        if penalty_rate.is_sign_negative() && !penalty_rate.is_zero() {
            return Err(DomainError::invalid("penalty_rate", "must not be negative"));
        }
        Self::applied(start, schedule, penalty_rate, repayments, None)
    }

    /// The repayments dated on or before `until` (all without it), applied in value-date
    /// order, booking order within a day.
    fn applied(
        start: NaiveDate,
        schedule: &[Instalment],
        penalty_rate: Decimal,
        repayments: &[Repayment<K>],
        until: Option<NaiveDate>,
    ) -> Result<Self, DomainError> {
        let mut engine = Engine::new(start, schedule, penalty_rate)?;
        let mut ordered: Vec<&Repayment<K>> = Vec::with_capacity(repayments.len());
        for r in repayments {
            check_repayment(r, start)?;
            if until.is_none_or(|u| r.value_date <= u) {
                ordered.push(r);
            }
        }
        ordered.sort_by_key(|r| r.value_date); // stable: same day keeps booking order
        let mut allocations = Vec::with_capacity(ordered.len() + 1);
        for r in ordered {
            allocations.push(engine.apply(r)?);
        }
        Ok(Replay {
            engine,
            start,
            allocations,
        })
    }

    /// The value date of the latest repayment applied; a repayment [`push`](Self::push)ed
    /// must not be earlier.
    pub fn last_value_date(&self) -> Option<NaiveDate> {
        self.engine.last_repayment
    }

    /// Applies `r` after the others and returns its allocation. `r` must be dated on or after
    /// [`last_value_date`](Self::last_value_date) (`invalid` on `value_date` otherwise); an
    /// error (`overpayment` and the like, as [`allocate`]'s) leaves the replay unchanged.
    pub fn push(&mut self, r: &Repayment<K>) -> Result<&Allocation<K>, DomainError> {
        check_repayment(r, self.start)?;
        if let Some(last) = self.last_value_date().filter(|&l| r.value_date < l) {
            return Err(DomainError::invalid(
                "value_date",
                format!(
                    "repayment {} is dated {}, before {last}, the latest one applied",
                    r.id, r.value_date
                ),
            ));
        }
        let mut engine = self.engine.clone();
        let allocation = engine.apply(r)?;
        self.engine = engine;
        self.allocations.push(allocation);
        Ok(&self.allocations[self.allocations.len() - 1])
    }

    /// [`position`](Self::position) without its `allocations` (left empty): a repayment file
    /// asks for the position after each row, and copying every earlier allocation each time
    /// made a row's cost grow with the loan's history.
    pub fn brief_position(&self, as_of: NaiveDate) -> Result<Position<K>, DomainError> {
        self.check_as_of(as_of)?;
        self.engine.clone().position(as_of, Vec::new())
    }

    fn check_as_of(&self, as_of: NaiveDate) -> Result<(), DomainError> {
        if as_of < self.start || self.last_value_date().is_some_and(|l| as_of < l) {
            return Err(DomainError::invalid(
                "as_of",
                format!(
                    "{as_of} is before the disbursement on {} or a repayment applied",
                    self.start
                ),
            ));
        }
        Ok(())
    }

    /// The position on `as_of`, which must not be before the disbursement nor before any
    /// repayment applied (`invalid` on `as_of`).
    pub fn position(&self, as_of: NaiveDate) -> Result<Position<K>, DomainError> {
        self.check_as_of(as_of)?;
        self.engine
            .clone()
            .position(as_of, self.allocations.clone())
    }
}

/// A repayment must be positive and not dated before the disbursement.
fn check_repayment<K: Display>(r: &Repayment<K>, start: NaiveDate) -> Result<(), DomainError> {
    if r.amount.is_zero() {
        return Err(DomainError::invalid(
            "amount",
            format!("repayment {} is zero; a repayment must be positive", r.id),
        ));
    }
    if r.value_date < start {
        return Err(DomainError::invalid(
            "value_date",
            format!(
                "repayment {} is dated {}, before the disbursement on {start}",
                r.id, r.value_date
            ),
        ));
    }
    Ok(())
}

/// One instalment while the repayments are applied; all amounts in fen.
#[derive(Debug, Clone)]
struct Slot {
    number: u32,
    /// Start of the interest period: the previous due date, or the disbursement date.
    start: NaiveDate,
    due: NaiveDate,
    principal: i128,
    scheduled_interest: i128,
    /// Scheduled principal outstanding during the period: this and all later principals.
    tail: i128,
    principal_paid: i128,
    interest_paid: i128,
    penalty_paid: i128,
    /// Σ overdue principal × days so far (fen·days), the base of the penalty.
    overdue_fen_days: i128,
    paid_on: Option<NaiveDate>,
}

impl Slot {
    fn principal_unpaid(&self) -> i128 {
        self.principal - self.principal_paid
    }
}

#[derive(Debug, Clone)]
struct Engine {
    slots: Vec<Slot>,
    /// Principal repaid early: (value date, fen), in value-date order.
    prepaid: Vec<(NaiveDate, i128)>,
    /// Penalty has been accrued up to (not including) this day.
    clock: NaiveDate,
    penalty_rate: Decimal,
    last_repayment: Option<NaiveDate>,
}

impl Engine {
    fn new(
        start: NaiveDate,
        schedule: &[Instalment],
        penalty_rate: Decimal,
    ) -> Result<Self, DomainError> {
        let bad = |message: String| DomainError::invalid("schedule", message);
        if schedule.is_empty() {
            return Err(bad("has no instalments".into()));
        }
        let mut slots = Vec::with_capacity(schedule.len());
        let mut previous = start;
        for (k, i) in schedule.iter().enumerate() {
            if i.number as usize != k + 1 {
                return Err(bad(format!(
                    "instalment {} is at position {}; numbers must run 1, 2, 3, …",
                    i.number,
                    k + 1
                )));
            }
            if i.due_date <= previous {
                return Err(bad(format!(
                    "instalment {} is due on {}, not after {previous}; due dates must increase from the disbursement date",
                    i.number, i.due_date
                )));
            }
            slots.push(Slot {
                number: i.number,
                start: previous,
                due: i.due_date,
                principal: fen::fen(i.principal),
                scheduled_interest: fen::fen(i.interest),
                tail: 0,
                principal_paid: 0,
                interest_paid: 0,
                penalty_paid: 0,
                overdue_fen_days: 0,
                paid_on: None,
            });
            previous = i.due_date;
        }
        let mut tail = 0;
        for s in slots.iter_mut().rev() {
            tail += s.principal;
            s.tail = tail;
            if tail == 0 && s.scheduled_interest > 0 {
                return Err(bad(format!(
                    "instalment {} charges interest after all principal has fallen due",
                    s.number
                )));
            }
        }
        if tail == 0 {
            return Err(bad("has no principal".into()));
        }
        Ok(Engine {
            slots,
            prepaid: Vec::new(),
            clock: start,
            penalty_rate: penalty_rate.normalize(),
            last_repayment: None,
        })
    }

    /// Σ over the days of `[from, to)` of the principal outstanding in a period whose scheduled
    /// outstanding is `tail`: prepaid principal comes off the end, so it is `tail − prepaid`.
    fn weight(&self, tail: i128, from: NaiveDate, to: NaiveDate) -> i128 {
        if to <= from {
            return 0;
        }
        let (mut prepaid, mut cursor, mut total) = (0, from, 0);
        for &(date, amount) in &self.prepaid {
            if date >= to {
                break;
            }
            if date > cursor {
                total += (tail - prepaid).max(0) * days(cursor, date);
                cursor = date;
            }
            prepaid += amount;
        }
        total + (tail - prepaid).max(0) * days(cursor, to)
    }

    /// Interest of instalment `k` for the days of its period before `until`.
    fn interest_until(&self, k: usize, until: NaiveDate) -> Result<i128, DomainError> {
        let s = &self.slots[k];
        if until <= s.start || s.tail == 0 {
            return Ok(0);
        }
        let w = self.weight(s.tail, s.start, until.min(s.due));
        Ok(div_round(
            mul(s.scheduled_interest, w)?,
            mul(s.tail, days(s.start, s.due))?,
        ))
    }

    /// Interest of instalment `k` for its whole period (given the early repayments so far).
    fn interest(&self, k: usize) -> Result<i128, DomainError> {
        self.interest_until(k, self.slots[k].due)
    }

    /// Penalty interest of instalment `k` accrued up to the clock, paid or not.
    fn penalty(&self, k: usize) -> Result<i128, DomainError> {
        mul_div_round(
            self.penalty_rate,
            self.slots[k].overdue_fen_days,
            DAY_COUNT_BASIS,
        )
    }

    /// Accrues penalty base up to (not including) `t`.
    fn accrue_to(&mut self, t: NaiveDate) -> Result<(), DomainError> {
        if t <= self.clock {
            return Ok(());
        }
        for s in &mut self.slots {
            let unpaid = s.principal_unpaid();
            let from = s.due.max(self.clock);
            if unpaid > 0 && t > from {
                s.overdue_fen_days = s
                    .overdue_fen_days
                    .checked_add(mul(unpaid, days(from, t))?)
                    .ok_or_else(fen::too_large)?;
            }
        }
        self.clock = t;
        Ok(())
    }

    fn apply<K: Clone + Display>(
        &mut self,
        r: &Repayment<K>,
    ) -> Result<Allocation<K>, DomainError> {
        let t = r.value_date;
        self.accrue_to(t)?;
        let amount = fen::fen(r.amount);
        let mut left = amount;
        // (penalty, interest, principal) per slot index
        let mut parts: BTreeMap<usize, [i128; 3]> = BTreeMap::new();
        let take = |left: &mut i128, owed: i128| {
            let x = (*left).min(owed.max(0));
            *left -= x;
            x
        };

        // 1. Instalments due by t, oldest first: penalty, interest, principal.
        for k in 0..self.slots.len() {
            if self.slots[k].due > t || left == 0 {
                break;
            }
            // Paid off: its penalty stopped accruing when its principal was paid (penalty
            // first), and its interest can only shrink; nothing is owed on it.
            if self.slots[k].paid_on.is_some() {
                continue;
            }
            let penalty = take(&mut left, self.penalty(k)? - self.slots[k].penalty_paid);
            let interest = take(&mut left, self.interest(k)? - self.slots[k].interest_paid);
            let principal = take(&mut left, self.slots[k].principal_unpaid());
            let s = &mut self.slots[k];
            s.penalty_paid += penalty;
            s.interest_paid += interest;
            s.principal_paid += principal;
            let p = parts.entry(k).or_default();
            p[0] += penalty;
            p[1] += interest;
            p[2] += principal;
        }

        // 2. Early repayment: the current period's accrued interest, then principal from the
        //    last instalment backwards.
        if left > 0 {
            if let Some(current) = self.slots.iter().position(|s| s.due > t) {
                let accrued = take(
                    &mut left,
                    self.interest_until(current, t)? - self.slots[current].interest_paid,
                );
                self.slots[current].interest_paid += accrued;
                parts.entry(current).or_default()[1] += accrued;
                let mut prepaid = 0;
                for k in (current..self.slots.len()).rev() {
                    if left == 0 {
                        break;
                    }
                    let principal = take(&mut left, self.slots[k].principal_unpaid());
                    self.slots[k].principal_paid += principal;
                    parts.entry(k).or_default()[2] += principal;
                    prepaid += principal;
                }
                // Repayments come in value-date order: one entry per day keeps `weight`
                // linear in the days with early repayments, not in the repayments (500
                // repayments on one day made every later `interest` walk 500 entries).
                match self.prepaid.last_mut() {
                    Some((day, sum)) if *day == t => *sum += prepaid,
                    _ if prepaid > 0 => self.prepaid.push((t, prepaid)),
                    _ => {}
                }
            }
        }

        if left > 0 {
            return Err(DomainError::rule(
                "overpayment",
                Some("amount"),
                format!(
                    "repayment {} of {} on {t} is more than everything owed that day ({}: principal, interest and penalty interest); the excess {} would not be owed, so the repayment is refused",
                    r.id,
                    r.amount,
                    fen::money(amount - left)?,
                    fen::money(left)?,
                ),
            ));
        }

        // 3. Instalments with something to pay and nothing left owed are paid on t.
        for k in 0..self.slots.len() {
            let s = &self.slots[k];
            if s.paid_on.is_none()
                && (s.principal > 0 || s.scheduled_interest > 0)
                && s.principal_unpaid() == 0
                && s.interest_paid >= self.interest(k)?
            {
                self.slots[k].paid_on = Some(t);
            }
        }
        self.last_repayment = Some(t);

        let mut allocation = Allocation {
            repayment_id: r.id.clone(),
            value_date: t,
            amount: r.amount,
            to_penalty: Money::ZERO,
            to_interest: Money::ZERO,
            to_principal: Money::ZERO,
            parts: Vec::with_capacity(parts.len()),
        };
        let mut totals = [0i128; 3];
        for (k, p) in parts {
            if p == [0; 3] {
                continue;
            }
            for (total, x) in totals.iter_mut().zip(p) {
                *total += x;
            }
            allocation.parts.push(AllocationPart {
                number: self.slots[k].number,
                to_penalty: fen::money(p[0])?,
                to_interest: fen::money(p[1])?,
                to_principal: fen::money(p[2])?,
                early: t < self.slots[k].due,
            });
        }
        allocation.to_penalty = fen::money(totals[0])?;
        allocation.to_interest = fen::money(totals[1])?;
        allocation.to_principal = fen::money(totals[2])?;
        Ok(allocation)
    }

    fn position<K>(
        mut self,
        as_of: NaiveDate,
        allocations: Vec<Allocation<K>>,
    ) -> Result<Position<K>, DomainError> {
        self.accrue_to(as_of)?;
        let mut sums = Sums::default();
        let mut instalments = Vec::with_capacity(self.slots.len());
        let mut oldest_past_due = None;
        for k in 0..self.slots.len() {
            let interest = self.interest(k)?;
            let penalty = self.penalty(k)?;
            let s = &self.slots[k];
            let principal_unpaid = s.principal_unpaid();
            let interest_unpaid = interest - s.interest_paid;
            sums.principal += s.principal;
            sums.principal_paid += s.principal_paid;
            sums.interest_paid += s.interest_paid;
            sums.penalty_paid += s.penalty_paid;
            sums.accrued_penalty += penalty - s.penalty_paid;
            if s.due <= as_of {
                sums.due_principal += principal_unpaid;
                sums.due_interest += interest_unpaid;
            }
            let unpaid = principal_unpaid > 0 || interest_unpaid > 0;
            if s.due < as_of && unpaid {
                sums.overdue_principal += principal_unpaid;
                sums.overdue_interest += interest_unpaid;
                oldest_past_due.get_or_insert(s.due);
            }
            if s.start <= as_of && as_of < s.due {
                sums.accrued_interest += self.interest_until(k, as_of)? - s.interest_paid;
            }
            instalments.push(InstalmentPosition {
                number: s.number,
                due_date: s.due,
                principal: fen::money(s.principal)?,
                scheduled_interest: fen::money(s.scheduled_interest)?,
                interest: fen::money(interest)?,
                principal_paid: fen::money(s.principal_paid)?,
                interest_paid: fen::money(s.interest_paid)?,
                penalty: fen::money(penalty)?,
                penalty_paid: fen::money(s.penalty_paid)?,
                paid_on: s.paid_on,
                days_past_due: if unpaid {
                    days_past_due(s.due, None, as_of)
                } else {
                    0
                },
            });
        }
        let outstanding = sums.principal - sums.principal_paid;
        let payoff = outstanding + sums.due_interest + sums.accrued_interest + sums.accrued_penalty;
        let settled = payoff == 0;
        let settled_on = if settled { self.last_repayment } else { None };
        // Instalments that never had anything to pay (a zero-rate interest-only month) count as
        // paid on their due date, or when the loan was settled if that was earlier.
        for (i, s) in instalments.iter_mut().zip(&self.slots) {
            if i.paid_on.is_none() && s.principal == 0 && s.scheduled_interest == 0 {
                let day = settled_on.map_or(s.due, |d| d.min(s.due));
                if day <= as_of {
                    i.paid_on = Some(day);
                }
            }
        }
        Ok(Position {
            as_of,
            principal: fen::money(sums.principal)?,
            principal_paid: fen::money(sums.principal_paid)?,
            interest_paid: fen::money(sums.interest_paid)?,
            penalty_paid: fen::money(sums.penalty_paid)?,
            outstanding_principal: fen::money(outstanding)?,
            due_principal: fen::money(sums.due_principal)?,
            due_interest: fen::money(sums.due_interest)?,
            overdue_principal: fen::money(sums.overdue_principal)?,
            overdue_interest: fen::money(sums.overdue_interest)?,
            accrued_interest: fen::money(sums.accrued_interest)?,
            accrued_penalty: fen::money(sums.accrued_penalty)?,
            payoff_amount: fen::money(payoff)?,
            days_past_due: oldest_past_due.map_or(0, |due| days_past_due(due, None, as_of)),
            settled,
            settled_on,
            instalments,
            allocations,
        })
    }
}

#[derive(Default)]
struct Sums {
    principal: i128,
    principal_paid: i128,
    interest_paid: i128,
    penalty_paid: i128,
    accrued_penalty: i128,
    due_principal: i128,
    due_interest: i128,
    overdue_principal: i128,
    overdue_interest: i128,
    accrued_interest: i128,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_schedule, InterestConvention, Rate, ScheduleMethod};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn d(y: i32, mo: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, day).unwrap()
    }
    fn pay(id: u64, date: NaiveDate, amount: &str) -> Repayment<u64> {
        Repayment {
            id,
            value_date: date,
            amount: m(amount),
        }
    }
    fn part(number: u32, pen: &str, int: &str, prin: &str, early: bool) -> AllocationPart {
        AllocationPart {
            number,
            to_penalty: m(pen),
            to_interest: m(int),
            to_principal: m(prin),
            early,
        }
    }

    /// 20,000.00 at 5.85 %, 12 months bullet from 2006-01-15, actual/360: one instalment due
    /// 2007-01-15 (365 days) with interest 20,000 × 0.0585 × 365 / 360 = 1,186.25.
    /// Penalty rate 0.0585 × 1.5 = 0.08775.
    fn bullet() -> (NaiveDate, Vec<Instalment>, Decimal) {
        let start = d(2006, 1, 15);
        let s = build_schedule(
            m("20000"),
            Rate::parse("0.0585").unwrap(),
            12,
            ScheduleMethod::Bullet,
            start,
            InterestConvention::Actual360,
        )
        .unwrap();
        assert_eq!(s[0].interest, m("1186.25"));
        (start, s, dec!(0.08775))
    }

    /// 3,000.00 at 7.2 %, 3 months equal principal from 2006-01-15, actual/360:
    /// 1,000.00 + 18.60 due 02-15, 1,000.00 + 11.20 due 03-15, 1,000.00 + 6.20 due 04-15.
    /// Penalty rate 0.072 × 1.5 = 0.108.
    fn three_months() -> (NaiveDate, Vec<Instalment>, Decimal) {
        let start = d(2006, 1, 15);
        let s = build_schedule(
            m("3000"),
            Rate::parse("0.072").unwrap(),
            3,
            ScheduleMethod::EqualPrincipal,
            start,
            InterestConvention::Actual360,
        )
        .unwrap();
        let interest: Vec<Money> = s.iter().map(|i| i.interest).collect();
        assert_eq!(interest, [m("18.60"), m("11.20"), m("6.20")]);
        (start, s, dec!(0.108))
    }

    #[test]
    fn nothing_paid_before_maturity() {
        let (start, s, pr) = bullet();
        let p = allocate::<u64>(start, &s, pr, &[], d(2006, 6, 1)).unwrap();
        assert_eq!(p.outstanding_principal, m("20000"));
        assert_eq!(p.instalments[0].interest, m("1186.25"));
        assert_eq!(p.due_principal, Money::ZERO);
        assert_eq!(p.overdue_principal, Money::ZERO);
        assert_eq!(p.days_past_due, 0);
        // 2006-01-15 → 2006-06-01 = 137 days: 20,000 × 0.0585 × 137 / 360 = 160,290 / 360
        // = 445.25
        assert_eq!(p.accrued_interest, m("445.25"));
        assert_eq!(p.payoff_amount, m("20445.25"));
        assert!(!p.settled);
    }

    #[test]
    fn bullet_paid_on_the_due_date() {
        let (start, s, pr) = bullet();
        let due = d(2007, 1, 15);
        // On the due date: principal + interest, no penalty.
        let before = allocate::<u64>(start, &s, pr, &[], due).unwrap();
        assert_eq!(before.payoff_amount, m("21186.25"));
        assert_eq!(before.due_principal, m("20000"));
        assert_eq!(before.due_interest, m("1186.25"));
        assert_eq!(before.overdue_principal, Money::ZERO); // due today is not past due
        let p = allocate(start, &s, pr, &[pay(1, due, "21186.25")], due).unwrap();
        assert!(p.settled);
        assert_eq!(p.settled_on, Some(due));
        assert_eq!(p.instalments[0].paid_on, Some(due));
        assert_eq!(p.allocations[0].to_interest, m("1186.25"));
        assert_eq!(p.allocations[0].to_principal, m("20000"));
        assert_eq!(
            p.allocations[0].parts,
            [part(1, "0", "1186.25", "20000", false)]
        );
        assert_eq!(p.payoff_amount, Money::ZERO);
        // One fen more is refused, naming the payoff amount.
        let e = allocate(start, &s, pr, &[pay(7, due, "21186.26")], due).unwrap_err();
        assert_eq!(e.code(), "overpayment");
        assert_eq!(e.field(), Some("amount"));
        assert!(e.message().contains("repayment 7"), "{e}");
        assert!(e.message().contains("21186.25"), "{e}");
        assert!(e.message().contains("excess 0.01"), "{e}");
    }

    #[test]
    fn bullet_paid_late_pays_penalty_first() {
        let (start, s, pr) = bullet();
        // 2007-01-15 → 2007-01-25: 10 days late. Penalty 20,000 × 0.08775 × 10 / 360
        // = 17,550 / 360 = 48.75. Then interest 1,186.25, then principal
        // 5,000 − 48.75 − 1,186.25 = 3,765.00; 16,235.00 outstanding.
        let r = [pay(1, d(2007, 1, 25), "5000")];
        let p = allocate(start, &s, pr, &r, d(2007, 1, 25)).unwrap();
        assert_eq!(
            p.allocations[0].parts,
            [part(1, "48.75", "1186.25", "3765", false)]
        );
        assert_eq!(p.outstanding_principal, m("16235"));
        assert_eq!(p.accrued_penalty, Money::ZERO);
        // As of 2007-02-14 (30 days past due): penalty base 20,000 × 10 + 16,235 × 20
        // = 524,700 yuan·days; × 0.08775 / 360 = 46,042.425 / 360 = 127.895625 → 127.90 in
        // all, 48.75 paid, 79.15 accrued.
        let p = allocate(start, &s, pr, &r, d(2007, 2, 14)).unwrap();
        assert_eq!(p.instalments[0].penalty, m("127.90"));
        assert_eq!(p.instalments[0].penalty_paid, m("48.75"));
        assert_eq!(p.accrued_penalty, m("79.15"));
        assert_eq!(p.overdue_principal, m("16235"));
        assert_eq!(p.overdue_interest, Money::ZERO);
        assert_eq!(p.days_past_due, 30);
        assert_eq!(p.instalments[0].days_past_due, 30);
        assert_eq!(p.payoff_amount, m("16314.15")); // 16,235.00 + 79.15
                                                    // Paying that settles it.
        let r2 = [r[0].clone(), pay(2, d(2007, 2, 14), "16314.15")];
        let p = allocate(start, &s, pr, &r2, d(2007, 3, 1)).unwrap();
        assert!(p.settled);
        assert_eq!(p.instalments[0].paid_on, Some(d(2007, 2, 14)));
        assert_eq!(p.penalty_paid, m("127.90"));
        assert_eq!(p.accrued_penalty, Money::ZERO); // nothing accrues once paid
        assert_eq!(p.days_past_due, 0);
    }

    #[test]
    fn whole_late_payoff_in_one() {
        let (start, s, pr) = bullet();
        // 30 days late: penalty 20,000 × 0.08775 × 30 / 360 = 52,650 / 360 = 146.25;
        // payoff 20,000.00 + 1,186.25 + 146.25 = 21,332.50.
        let p = allocate::<u64>(start, &s, pr, &[], d(2007, 2, 14)).unwrap();
        assert_eq!(p.accrued_penalty, m("146.25"));
        assert_eq!(p.overdue_interest, m("1186.25"));
        assert_eq!(p.payoff_amount, m("21332.50"));
    }

    #[test]
    fn early_repayment_pays_accrued_interest_then_principal() {
        let (start, s, pr) = bullet();
        // 2006-01-15 → 2006-07-15 = 181 days. Accrued interest 20,000 × 0.0585 × 181 / 360
        // = 211,770 / 360 = 588.25; the rest of 10,000.00 reduces principal: 9,411.75;
        // 10,588.25 outstanding.
        let r = [pay(1, d(2006, 7, 15), "10000")];
        let p = allocate(start, &s, pr, &r, d(2006, 7, 15)).unwrap();
        assert_eq!(
            p.allocations[0].parts,
            [part(1, "0", "588.25", "9411.75", true)]
        );
        assert_eq!(p.outstanding_principal, m("10588.25"));
        // Interest of the period: 20,000 for 181 days + 10,588.25 for 184 days
        // = 3,620,000 + 1,948,238 = 5,568,238 yuan·days × 0.0585 / 360 = 904.838675 → 904.84
        // (the scheduled 1,186.25 × 5,568,238 / (20,000 × 365) gives the same).
        assert_eq!(p.instalments[0].scheduled_interest, m("1186.25"));
        assert_eq!(p.instalments[0].interest, m("904.84"));
        assert_eq!(p.accrued_interest, Money::ZERO);
        // At maturity 904.84 − 588.25 = 316.59 is due (= 10,588.25 × 0.0585 × 184 / 360
        // = 316.5886 → 316.59), with the principal: 10,904.84.
        let p = allocate(start, &s, pr, &r, d(2007, 1, 15)).unwrap();
        assert_eq!(p.due_interest, m("316.59"));
        assert_eq!(p.payoff_amount, m("10904.84"));
        let r2 = [r[0].clone(), pay(2, d(2007, 1, 15), "10904.84")];
        let p = allocate(start, &s, pr, &r2, d(2007, 1, 15)).unwrap();
        assert!(p.settled);
        assert_eq!(p.interest_paid, m("904.84"));
    }

    #[test]
    fn full_early_payoff_settles_with_interest_to_date() {
        let (start, s, pr) = bullet();
        // Payoff on 2006-07-15: 20,000.00 + 588.25 accrued = 20,588.25.
        let p = allocate::<u64>(start, &s, pr, &[], d(2006, 7, 15)).unwrap();
        assert_eq!(p.payoff_amount, m("20588.25"));
        let p = allocate(
            start,
            &s,
            pr,
            &[pay(1, d(2006, 7, 15), "20588.25")],
            d(2007, 6, 1),
        )
        .unwrap();
        assert!(p.settled);
        assert_eq!(p.settled_on, Some(d(2006, 7, 15)));
        assert_eq!(p.instalments[0].interest, m("588.25"));
        assert_eq!(p.instalments[0].paid_on, Some(d(2006, 7, 15)));
        assert_eq!(p.days_past_due, 0);
        let e = allocate(
            start,
            &s,
            pr,
            &[pay(1, d(2006, 7, 15), "20588.26")],
            d(2006, 7, 15),
        )
        .unwrap_err();
        assert_eq!(e.code(), "overpayment");
        // After settlement any further repayment is an overpayment.
        let e = allocate(
            start,
            &s,
            pr,
            &[
                pay(1, d(2006, 7, 15), "20588.25"),
                pay(2, d(2006, 8, 1), "0.01"),
            ],
            d(2006, 8, 1),
        )
        .unwrap_err();
        assert!(e.message().contains("repayment 2"), "{e}");
    }

    #[test]
    fn overdue_instalments_are_paid_oldest_first_each_penalty_interest_principal() {
        let (start, s, pr) = three_months();
        let as_of = d(2006, 4, 15);
        // Nothing paid by 04-15. Instalment 1 (due 02-15) is 28 + 31 = 59 days past due:
        // penalty 1,000 × 0.108 × 59 / 360 = 6,372 / 360 = 17.70. Instalment 2 (due 03-15),
        // 31 days: 1,000 × 0.108 × 31 / 360 = 3,348 / 360 = 9.30. Instalment 3 is due today.
        let p = allocate::<u64>(start, &s, pr, &[], as_of).unwrap();
        assert_eq!(p.accrued_penalty, m("27.00"));
        assert_eq!(p.overdue_principal, m("2000"));
        assert_eq!(p.overdue_interest, m("29.80"));
        assert_eq!(p.due_principal, m("3000"));
        assert_eq!(p.due_interest, m("36.00"));
        assert_eq!(p.days_past_due, 59);
        assert_eq!(p.payoff_amount, m("3063.00"));
        // 1,100.00 on 04-15: instalment 1: 17.70 + 18.60 + 1,000.00 = 1,036.30; 63.70 left for
        // instalment 2: penalty 9.30, interest 11.20, principal 43.20.
        let p = allocate(start, &s, pr, &[pay(1, as_of, "1100")], as_of).unwrap();
        assert_eq!(
            p.allocations[0].parts,
            [
                part(1, "17.70", "18.60", "1000", false),
                part(2, "9.30", "11.20", "43.20", false),
            ]
        );
        assert_eq!(p.allocations[0].to_penalty, m("27.00"));
        assert_eq!(p.allocations[0].to_interest, m("29.80"));
        assert_eq!(p.allocations[0].to_principal, m("1043.20"));
        assert_eq!(p.instalments[0].paid_on, Some(as_of));
        assert_eq!(p.instalments[1].paid_on, None);
        // Instalment 2 still past due (31 days), with 956.80 principal.
        assert_eq!(p.days_past_due, 31);
        assert_eq!(p.overdue_principal, m("956.80"));
        assert_eq!(p.overdue_interest, Money::ZERO);
        assert_eq!(p.instalments[2].days_past_due, 0); // due today
        assert_eq!(p.outstanding_principal, m("1956.80"));
    }

    #[test]
    fn late_then_early_in_one_repayment() {
        let (start, s, pr) = three_months();
        // 02-15: 1,018.60 on time. 03-25 (10 days late): instalment 2 penalty
        // 1,000 × 0.108 × 10 / 360 = 3.00, interest 11.20, principal 1,000.00; 500.00 left is
        // early: instalment 3's period runs 03-15 → 04-15 (31 days); accrued to 03-25:
        // 6.20 × 1,000 × 10 / (1,000 × 31) = 2.00; then 498.00 principal.
        let r = [
            pay(1, d(2006, 2, 15), "1018.60"),
            pay(2, d(2006, 3, 25), "1514.20"),
        ];
        let p = allocate(start, &s, pr, &r, d(2006, 3, 25)).unwrap();
        assert_eq!(
            p.allocations[0].parts,
            [part(1, "0", "18.60", "1000", false)]
        );
        assert_eq!(
            p.allocations[1].parts,
            [
                part(2, "3.00", "11.20", "1000", false),
                part(3, "0", "2.00", "498.00", true),
            ]
        );
        assert_eq!(p.outstanding_principal, m("502.00"));
        // Instalment 3's interest: (1,000 × 10 + 502 × 21) × 0.072 / 360 = 20,542 × 0.0002
        // = 4.1084 → 4.11; 2.11 of it due on 04-15 with 502.00: payoff 504.11.
        assert_eq!(p.instalments[2].interest, m("4.11"));
        let p = allocate(start, &s, pr, &r, d(2006, 4, 15)).unwrap();
        assert_eq!(p.payoff_amount, m("504.11"));
        assert_eq!(p.instalments[1].paid_on, Some(d(2006, 3, 25)));
        let mut r3 = r.to_vec();
        r3.push(pay(3, d(2006, 4, 15), "504.11"));
        let p = allocate(start, &s, pr, &r3, d(2006, 4, 15)).unwrap();
        assert!(p.settled);
        assert_eq!(p.penalty_paid, m("3.00"));
        assert_eq!(p.interest_paid, m("33.91")); // 18.60 + 11.20 + 4.11
        assert_eq!(p.principal_paid, m("3000"));
    }

    #[test]
    fn early_repayment_shortens_the_term_from_the_end() {
        let (start, s, pr) = three_months();
        // On 01-15 (the disbursement day, nothing accrued) 1,500.00 early: instalment 3's
        // 1,000.00 and 500.00 of instalment 2. Every period's outstanding drops by 1,500.00:
        // period 1 on 1,500 instead of 3,000: 18.60 × 1,500 / 3,000 = 9.30; period 2 on 500
        // instead of 2,000: 11.20 × 500 / 2,000 = 2.80; period 3 on nothing: 0, so instalment 3
        // is fully paid.
        let r = [pay(1, start, "1500")];
        let p = allocate(start, &s, pr, &r, start).unwrap();
        assert_eq!(
            p.allocations[0].parts,
            [
                part(2, "0", "0", "500", true),
                part(3, "0", "0", "1000", true)
            ]
        );
        let interest: Vec<Money> = p.instalments.iter().map(|i| i.interest).collect();
        assert_eq!(interest, [m("9.30"), m("2.80"), m("0")]);
        assert_eq!(p.instalments[2].paid_on, Some(start));
        // The regular instalment 1 stays: 1,000.00 + 9.30 due on 02-15.
        let p = allocate(start, &s, pr, &r, d(2006, 2, 15)).unwrap();
        assert_eq!(p.due_principal, m("1000"));
        assert_eq!(p.due_interest, m("9.30"));
    }

    #[test]
    fn penalty_only_on_principal() {
        // 12,000.00 at 6 %, interest monthly (60.00 a month, monthly-30) for 3 months from
        // 2006-01-15: the first 60.00 unpaid for 30 days earns no penalty interest.
        let start = d(2006, 1, 15);
        let s = build_schedule(
            m("12000"),
            Rate::parse("0.06").unwrap(),
            3,
            ScheduleMethod::InterestMonthly,
            start,
            InterestConvention::Monthly30,
        )
        .unwrap();
        let p = allocate::<u64>(start, &s, dec!(0.09), &[], d(2006, 3, 14)).unwrap();
        assert_eq!(p.overdue_interest, m("60.00"));
        assert_eq!(p.accrued_penalty, Money::ZERO);
        assert_eq!(p.days_past_due, 27); // 02-15 → 03-14
                                         // Accrued interest of the current period 02-15 → 03-15 (28 days) to 03-14:
                                         // 60.00 × 27 / 28 = 57.857… → 57.86.
        assert_eq!(p.accrued_interest, m("57.86"));
    }

    #[test]
    fn value_date_order_not_booking_order() {
        let (start, s, pr) = three_months();
        let a = pay(1, d(2006, 2, 15), "1018.60");
        let b = pay(2, d(2006, 3, 15), "1011.20");
        let booked = allocate(start, &s, pr, &[b.clone(), a.clone()], d(2006, 3, 20)).unwrap();
        let ordered = allocate(start, &s, pr, &[a, b], d(2006, 3, 20)).unwrap();
        assert_eq!(booked, ordered);
        assert_eq!(booked.allocations[0].repayment_id, 1);
        assert_eq!(booked.days_past_due, 0);
    }

    #[test]
    fn backdated_repayment_can_turn_a_later_one_into_an_overpayment() {
        let (start, s, pr) = bullet();
        let payoff = pay(1, d(2006, 7, 15), "20588.25");
        let backdated = pay(2, d(2006, 7, 1), "100");
        let e = allocate(start, &s, pr, &[payoff, backdated], d(2006, 8, 1)).unwrap_err();
        assert_eq!(e.code(), "overpayment");
        assert!(e.message().contains("repayment 1 "), "{e}");
    }

    #[test]
    fn repayments_after_as_of_do_not_count_yet() {
        let (start, s, pr) = bullet();
        let r = [pay(1, d(2007, 1, 15), "21186.25")];
        let p = allocate(start, &s, pr, &r, d(2007, 1, 14)).unwrap();
        assert!(p.allocations.is_empty());
        assert_eq!(p.principal_paid, Money::ZERO);
    }

    #[test]
    fn bad_inputs() {
        let (start, s, pr) = bullet();
        let e = allocate(start, &s, pr, &[pay(1, d(2006, 1, 14), "1")], d(2006, 2, 1)).unwrap_err();
        assert_eq!(e.field(), Some("value_date"));
        let e = allocate(start, &s, pr, &[pay(1, start, "0")], d(2006, 2, 1)).unwrap_err();
        assert_eq!(e.field(), Some("amount"));
        assert_eq!(e.code(), "invalid");
        let e = allocate::<u64>(start, &s, pr, &[], d(2006, 1, 14)).unwrap_err();
        assert_eq!(e.field(), Some("as_of"));
        let e = allocate::<u64>(start, &s, dec!(-0.1), &[], start).unwrap_err();
        assert_eq!(e.field(), Some("penalty_rate"));
        let e = allocate::<u64>(start, &[], pr, &[], start).unwrap_err();
        assert_eq!(e.field(), Some("schedule"));
        let e = allocate::<u64>(d(2007, 1, 15), &s, pr, &[], d(2007, 2, 1)).unwrap_err();
        assert!(e.message().contains("due dates must increase"), "{e}");
        let mut renumbered = s.clone();
        renumbered[0].number = 2;
        let e = allocate::<u64>(start, &renumbered, pr, &[], start).unwrap_err();
        assert!(e.message().contains("numbers must run"), "{e}");
        let mut interest_after_principal = s.clone();
        interest_after_principal.push(Instalment {
            number: 2,
            due_date: d(2007, 2, 15),
            principal: Money::ZERO,
            interest: m("1"),
        });
        let e = allocate::<u64>(start, &interest_after_principal, pr, &[], start).unwrap_err();
        assert!(e.message().contains("after all principal"), "{e}");
    }

    #[test]
    fn serializes_money_as_strings() {
        let (start, s, pr) = bullet();
        let p = allocate(start, &s, pr, &[pay(9, d(2006, 7, 15), "10000")], start).unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["outstanding_principal"], "20000.00");
        assert_eq!(json["instalments"][0]["paid_on"], serde_json::Value::Null);
    }

    // ---- properties ----------------------------------------------------------------------

    fn any_method() -> impl Strategy<Value = ScheduleMethod> {
        prop::sample::select(ScheduleMethod::ALL.to_vec())
    }
    fn any_convention() -> impl Strategy<Value = InterestConvention> {
        prop::sample::select(InterestConvention::ALL.to_vec())
    }

    prop_compose! {
        /// A realistic loan: 1,000.00 – 500,000.00, 0 – 12 %, 1 – 36 months.
        fn any_loan()(
            fen in 100_000i64..=50_000_000,
            rate_millionths in 0i64..=120_000,
            term in 1u32..=36,
            method in any_method(),
            convention in any_convention(),
            start_days in 0i64..=6_000,
        ) -> (NaiveDate, Vec<Instalment>, Decimal) {
            let start = d(2003, 1, 1) + chrono::Duration::days(start_days);
            let rate = Rate::from_decimal(Decimal::new(rate_millionths, 6)).unwrap();
            let s = build_schedule(
                Money::from_decimal(Decimal::new(fen, 2)).unwrap(),
                rate, term, method, start, convention,
            ).unwrap();
            (start, s, rate.value() * dec!(1.5))
        }
    }

    /// Builds valid repayments: at each chosen day, a fraction (in ‰) of the payoff amount.
    fn valid_repayments(
        start: NaiveDate,
        s: &[Instalment],
        pr: Decimal,
        steps: &[(i64, u32)],
    ) -> Vec<Repayment<u64>> {
        let mut out = Vec::new();
        let mut day = start;
        for (k, &(gap, permille)) in steps.iter().enumerate() {
            day += chrono::Duration::days(gap);
            let p = allocate(start, s, pr, &out, day).unwrap();
            let amount = crate::round_money(
                p.payoff_amount.amount() * Decimal::from(permille) / Decimal::from(1000),
            )
            .max(dec!(0.01));
            if p.payoff_amount.is_zero() {
                break;
            }
            out.push(Repayment {
                id: k as u64,
                value_date: day,
                amount: Money::from_decimal(amount.min(p.payoff_amount.amount())).unwrap(),
            });
        }
        out
    }

    fn check_invariants(p: &Position<u64>, repayments: &[Repayment<u64>]) {
        let sum = |f: fn(&InstalmentPosition) -> Money| {
            Money::checked_sum(p.instalments.iter().map(f)).unwrap()
        };
        assert_eq!(
            p.outstanding_principal.amount(),
            p.principal.amount() - p.principal_paid.amount()
        );
        assert_eq!(sum(|i| i.principal), p.principal);
        assert_eq!(sum(|i| i.principal_paid), p.principal_paid);
        assert_eq!(sum(|i| i.interest_paid), p.interest_paid);
        assert_eq!(sum(|i| i.penalty_paid), p.penalty_paid);
        for i in &p.instalments {
            assert!(i.principal_paid <= i.principal);
            assert!(i.interest_paid <= i.interest, "{i:?}");
            assert!(i.interest <= i.scheduled_interest);
            assert!(i.penalty_paid <= i.penalty);
        }
        let mut paid = [Decimal::ZERO; 3];
        for a in &p.allocations {
            let r = repayments.iter().find(|r| r.id == a.repayment_id).unwrap();
            assert_eq!(a.amount, r.amount);
            assert_eq!(
                a.to_penalty.amount() + a.to_interest.amount() + a.to_principal.amount(),
                a.amount.amount()
            );
            let parts = |f: fn(&AllocationPart) -> Money| {
                Money::checked_sum(a.parts.iter().map(f)).unwrap()
            };
            assert_eq!(parts(|x| x.to_penalty), a.to_penalty);
            assert_eq!(parts(|x| x.to_interest), a.to_interest);
            assert_eq!(parts(|x| x.to_principal), a.to_principal);
            paid[0] += a.to_penalty.amount();
            paid[1] += a.to_interest.amount();
            paid[2] += a.to_principal.amount();
        }
        assert_eq!(
            paid,
            [
                p.penalty_paid.amount(),
                p.interest_paid.amount(),
                p.principal_paid.amount()
            ]
        );
        assert!(p.due_principal >= p.overdue_principal);
        assert!(p.due_interest >= p.overdue_interest);
        assert_eq!(
            p.payoff_amount.amount(),
            p.outstanding_principal.amount()
                + p.due_interest.amount()
                + p.accrued_interest.amount()
                + p.accrued_penalty.amount()
        );
        assert_eq!(p.settled, p.payoff_amount.is_zero());
        if p.settled {
            assert!(p.instalments.iter().all(|i| i.paid_on.is_some()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn no_repayment_keeps_the_schedule((start, s, pr) in any_loan(), after in 0i64..=1500) {
            let as_of = start + chrono::Duration::days(after);
            let p = allocate::<u64>(start, &s, pr, &[], as_of).unwrap();
            for (i, sched) in p.instalments.iter().zip(&s) {
                prop_assert_eq!(i.interest, sched.interest);
                prop_assert_eq!(i.principal, sched.principal);
            }
            prop_assert_eq!(p.outstanding_principal, p.principal);
            check_invariants(&p, &[]);
        }

        #[test]
        fn invariants_hold_and_the_payoff_settles(
            (start, s, pr) in any_loan(),
            steps in prop::collection::vec((0i64..=200, 1u32..=1000), 0..8),
            last_gap in 0i64..=400,
        ) {
            let repayments = valid_repayments(start, &s, pr, &steps);
            let last = repayments.last().map_or(start, |r| r.value_date);
            let as_of = last + chrono::Duration::days(last_gap);
            let p = allocate(start, &s, pr, &repayments, as_of).unwrap();
            check_invariants(&p, &repayments);

            // Booking order does not matter: reversed booking gives the same position.
            let mut reversed = repayments.clone();
            reversed.reverse();
            let q = allocate(start, &s, pr, &reversed, as_of).unwrap();
            if repayments.windows(2).all(|w| w[0].value_date < w[1].value_date) {
                prop_assert_eq!(&p, &q);
            }

            if !p.settled {
                let mut all = repayments.clone();
                all.push(Repayment { id: 99, value_date: as_of, amount: p.payoff_amount });
                let settled = allocate(start, &s, pr, &all, as_of).unwrap();
                check_invariants(&settled, &all);
                prop_assert!(settled.settled);
                prop_assert_eq!(settled.outstanding_principal, Money::ZERO);
                // Still settled, with nothing accruing, a year later.
                let later = allocate(start, &s, pr, &all, as_of + chrono::Duration::days(365)).unwrap();
                prop_assert!(later.settled);
                prop_assert_eq!(later.accrued_penalty, Money::ZERO);

                // One fen more is an overpayment.
                let last = all.len() - 1;
                all[last].amount = p.payoff_amount.checked_add(m("0.01")).unwrap();
                let e = allocate(start, &s, pr, &all, as_of).unwrap_err();
                prop_assert_eq!(e.code(), "overpayment");
            }
        }

        /// Paying an amount in two repayments on the same day leaves the loan exactly where
        /// one repayment of the sum leaves it (only the allocations list differs).
        #[test]
        fn a_repayment_split_on_its_day_leaves_the_same_position(
            (start, s, pr) in any_loan(),
            steps in prop::collection::vec((0i64..=200, 1u32..=1000), 1..8),
            split in 1u32..1000,
            last_gap in 0i64..=400,
        ) {
            let repayments = valid_repayments(start, &s, pr, &steps);
            let last = repayments.last().unwrap().clone();
            let first = crate::round_money(
                last.amount.amount() * Decimal::from(split) / Decimal::from(1000),
            );
            let rest = last.amount.amount() - first;
            prop_assume!(first > Decimal::ZERO && rest > Decimal::ZERO);
            let mut split_up = repayments[..repayments.len() - 1].to_vec();
            for (id, amount) in [(100, first), (101, rest)] {
                split_up.push(Repayment {
                    id,
                    value_date: last.value_date,
                    amount: Money::from_decimal(amount).unwrap(),
                });
            }
            let as_of = last.value_date + chrono::Duration::days(last_gap);
            let mut one = allocate(start, &s, pr, &repayments, as_of).unwrap();
            let mut two = allocate(start, &s, pr, &split_up, as_of).unwrap();
            check_invariants(&two, &split_up);
            one.allocations.clear();
            two.allocations.clear();
            prop_assert_eq!(one, two);
        }

        /// Adding repayments one at a time to a replay gives, after each, the position that
        /// allocating all of them gives; a refused one (an overpayment, a backdated one)
        /// changes nothing.
        #[test]
        fn a_replay_grows_as_allocate_answers(
            (start, s, pr) in any_loan(),
            steps in prop::collection::vec((0i64..=200, 1u32..=1000), 1..8),
            first in 0usize..8,
            last_gap in 0i64..=400,
        ) {
            let repayments = valid_repayments(start, &s, pr, &steps);
            let first = first.min(repayments.len());
            let mut replay = Replay::new(start, &s, pr, &repayments[..first]).unwrap();
            for k in first..repayments.len() {
                let r = &repayments[k];
                let alloc = replay.push(r).unwrap().clone();
                let as_of = r.value_date + chrono::Duration::days(last_gap);
                let p = allocate(start, &s, pr, &repayments[..=k], as_of).unwrap();
                prop_assert_eq!(&replay.position(as_of).unwrap(), &p);
                prop_assert_eq!(p.allocations.last(), Some(&alloc));
                // The brief position is the same but for the allocations.
                let brief = replay.brief_position(as_of).unwrap();
                prop_assert_eq!(&brief, &Position { allocations: Vec::new(), ..p.clone() });
                if let Some(before) = as_of.checked_sub_signed(chrono::Duration::days(last_gap + 1)) {
                    prop_assert!(replay.brief_position(before).is_err());
                }
            }
            let as_of = repayments.last().map_or(start, |r| r.value_date);
            let before = replay.position(as_of).unwrap();
            if !before.settled {
                let too_much = Repayment {
                    id: 99,
                    value_date: as_of,
                    amount: before.payoff_amount.checked_add(m("0.01")).unwrap(),
                };
                prop_assert_eq!(replay.push(&too_much).unwrap_err().code(), "overpayment");
                prop_assert_eq!(&replay.position(as_of).unwrap(), &before);
            }
            if as_of > start {
                let backdated = Repayment { id: 98, value_date: as_of.pred_opt().unwrap(), amount: m("0.01") };
                prop_assert_eq!(replay.push(&backdated).unwrap_err().code(), "invalid");
                prop_assert_eq!(&replay.position(as_of).unwrap(), &before);
            }
        }
    }
}
