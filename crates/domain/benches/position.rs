//! `cargo bench -p danbao-domain`: the time to compute a loan's position from 1 and from 500
//! repayments (the in-process part of `GET /v1/loans/{id}`, benchmark 2 of issue 6). Prints
//! the median of several rounds per case; no timing is asserted.
use chrono::NaiveDate;
use danbao_domain::position::{allocate, Repayment};
use danbao_domain::schedule::{build_schedule, InterestConvention};
use danbao_domain::{Money, Rate, ScheduleMethod};
use rust_decimal::Decimal;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let start = NaiveDate::from_ymd_opt(2025, 1, 15).unwrap();
    let schedule = build_schedule(
        Money::parse("12000.00").unwrap(),
        Rate::parse("0.0435").unwrap(),
        12,
        ScheduleMethod::EqualPrincipal,
        start,
        InterestConvention::Actual360,
    )
    .unwrap();
    let penalty = Decimal::new(6525, 5);
    let as_of = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    println!("case                                     median       per repayment");
    for (label, n, days_apart) in [
        ("1 repayment", 1u32, 0i64),
        ("500 repayments, one day", 500, 0),
        ("500 repayments, daily", 500, 1),
    ] {
        let repayments: Vec<Repayment<u32>> = (0..n)
            .map(|i| Repayment {
                id: i,
                value_date: start + chrono::Days::new((1 + i64::from(i) * days_apart) as u64),
                amount: Money::parse("1.00").unwrap(),
            })
            .collect();
        let as_of = as_of.max(repayments.last().unwrap().value_date);
        let iterations = 2_000 / n.max(1) * 50 + 200;
        let mut rounds: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iterations {
                    black_box(
                        allocate(start, &schedule, penalty, black_box(&repayments), as_of).unwrap(),
                    );
                }
                t.elapsed().as_secs_f64() / f64::from(iterations)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        let median = rounds[rounds.len() / 2];
        println!(
            "{label:<40} {:>8.1} µs  {:>8.3} µs",
            median * 1e6,
            median * 1e6 / f64::from(n)
        );
    }
}
