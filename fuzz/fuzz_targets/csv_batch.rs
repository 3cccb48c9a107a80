//! The repayment file reader: any bytes, cut into chunks of any size, give the same rows (or
//! the same refusal) as the whole body at once, never a panic; and every row that validates
//! keeps the bounds the route relies on.
#![no_main]

use chrono::NaiveDate;
use danbao_domain::bounds::EARLIEST_DATE;
use danbao_domain::repayment_file::{
    validate, CsvRows, FileError, RawRow, Target, MAX_REFERENCE, MAX_ROWS,
};
use libfuzzer_sys::fuzz_target;

fn parse(chunks: &mut dyn Iterator<Item = &[u8]>) -> Result<Vec<RawRow>, FileError> {
    let mut csv = CsvRows::default();
    let mut rows = Vec::new();
    for c in chunks {
        // The route never feeds an empty chunk before the end: an empty slice means "end".
        if !c.is_empty() {
            csv.feed(c, &mut rows)?;
        }
    }
    csv.feed(&[], &mut rows)?;
    Ok(rows)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = parse(&mut std::iter::once(body));
    let chunked = parse(&mut body.chunks(usize::from(cut) + 1));
    assert_eq!(whole, chunked, "chunking changed the result");

    let Ok(rows) = whole else {
        return;
    };
    assert!(rows.len() <= MAX_ROWS as usize);
    let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    for (i, raw) in rows.iter().enumerate() {
        assert_eq!(raw.row_no as usize, i + 1, "rows are numbered from 1");
        match validate(raw, today) {
            Ok(row) => {
                assert!(raw.problem.is_none());
                assert!(!row.reference.is_empty());
                assert!(row.reference.chars().count() <= MAX_REFERENCE);
                assert!(!row.reference.chars().any(char::is_control));
                assert!(row.value_date <= today);
                assert!(row.value_date >= EARLIEST_DATE);
                assert!(!row.amount.is_zero());
                if let Target::Account(a) = &row.target {
                    assert!(a.chars().count() <= MAX_REFERENCE);
                }
            }
            Err(e) => assert!(e.field().is_some_and(|f| !f.is_empty()), "{e:?}"),
        }
    }
});
