//! A bank's repayment file as sent: the incremental CSV reader and the per-row validation.
//! Kept here, without I/O, so that it can be fuzzed on its own (`fuzz/`) and so that the route
//! and `danbao import-repayments` read files the same way.

use crate::bounds::{check_business_date, check_text};
use crate::{DomainError, Money};
use chrono::NaiveDate;
use uuid::Uuid;

/// Most data rows in one file.
pub const MAX_ROWS: u32 = 200_000;
/// Longest CSV record (bytes, quotes included, line end excluded).
pub const MAX_LINE: usize = 4096;
/// Longest `bank_reference` and `bank_account_no` (characters).
pub const MAX_REFERENCE: usize = 64;
/// Most fields in one CSV record.
pub const MAX_FIELDS: usize = 16;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a whole file is refused: each problem names its field (a column, `header` or `row N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError(pub Vec<DomainError>);

impl FileError {
    fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        FileError(vec![DomainError::invalid(field, message)])
    }

    /// The first problem's field.
    pub fn field(&self) -> Option<&str> {
        self.0.first().and_then(DomainError::field)
    }
}

/// The error for a file with more than [`MAX_ROWS`] rows.
pub fn too_many_rows() -> FileError {
    FileError::one("body", format!("more than {MAX_ROWS} rows in one file"))
}

/// A column of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    BankReference,
    ValueDate,
    Amount,
    LoanId,
    BankAccountNo,
}

const COLUMNS: [(&str, Column); 5] = [
    ("bank_reference", Column::BankReference),
    ("value_date", Column::ValueDate),
    ("amount", Column::Amount),
    ("loan_id", Column::LoanId),
    ("bank_account_no", Column::BankAccountNo),
];

impl Column {
    /// The column called `name` (exactly, lower case).
    pub fn named(name: &str) -> Option<Column> {
        COLUMNS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    pub fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

/// One data row as sent: each column's text (trimmed; `None` when absent or empty).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// 1 for the first data row (the CSV header is not counted).
    pub row_no: u32,
    pub bank_reference: Option<String>,
    pub value_date: Option<String>,
    pub amount: Option<String>,
    pub loan_id: Option<String>,
    pub bank_account_no: Option<String>,
    /// A problem found while reading the row (wrong field count, not UTF-8, unknown key).
    pub problem: Option<(String, String)>,
}

impl RawRow {
    pub fn set(&mut self, c: Column, v: Option<String>) {
        let slot = match c {
            Column::BankReference => &mut self.bank_reference,
            Column::ValueDate => &mut self.value_date,
            Column::Amount => &mut self.amount,
            Column::LoanId => &mut self.loan_id,
            Column::BankAccountNo => &mut self.bank_account_no,
        };
        *slot = v;
    }
}

/// An incremental RFC 4180 reader: feed it the body's chunks as they come (an empty slice at
/// the end); it yields complete rows. Holds at most one record besides the chunk.
pub struct CsvRows {
    rdr: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    record_bytes: usize,
    columns: Option<Vec<Column>>,
    rows: u32,
    prefix: Option<Vec<u8>>,
    done: bool,
}

impl Default for CsvRows {
    fn default() -> Self {
        CsvRows {
            rdr: csv_core::Reader::new(),
            out: vec![0; MAX_LINE],
            ends: vec![0; MAX_FIELDS],
            nout: 0,
            nend: 0,
            record_bytes: 0,
            columns: None,
            rows: 0,
            prefix: Some(Vec::new()),
            done: false,
        }
    }
}

impl CsvRows {
    /// Data rows read so far.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Whether the header row has been read.
    pub fn has_header(&self) -> bool {
        self.columns.is_some()
    }

    /// Feeds a chunk (an empty one means the end of the body); complete rows go to `sink`.
    pub fn feed(&mut self, input: &[u8], sink: &mut Vec<RawRow>) -> Result<(), FileError> {
        let eof = input.is_empty();
        if let Some(mut prefix) = self.prefix.take() {
            // An optional UTF-8 byte order mark, even if the first chunk is tiny: csv_core
            // strips one only if its first input holds all three bytes. (Stripping it here as
            // well once let a second BOM vanish only when the file came in one piece; found by
            // the fuzzer.) More than the BOM, too: csv_core takes an empty rest for the end.
            prefix.extend_from_slice(input);
            if prefix.len() <= BOM.len() && !eof {
                self.prefix = Some(prefix);
                return Ok(());
            }
            if !prefix.is_empty() {
                self.parse(&prefix, sink)?;
            }
            if eof {
                self.parse(&[], sink)?;
            }
            return Ok(());
        }
        self.parse(input, sink)
    }

    fn which(&self) -> String {
        if self.columns.is_none() {
            "header".to_owned()
        } else {
            format!("row {}", self.rows + 1)
        }
    }

    fn line_too_long(&self) -> FileError {
        FileError::one(self.which(), format!("longer than {MAX_LINE} bytes"))
    }

    fn parse(&mut self, input: &[u8], sink: &mut Vec<RawRow>) -> Result<(), FileError> {
        use csv_core::ReadRecordResult as R;
        // An empty slice tells csv_core the input is over: only pass one at the real end.
        let eof = input.is_empty();
        let mut pos = 0;
        loop {
            if self.done || (!eof && pos == input.len()) {
                return Ok(());
            }
            let (res, nin, nout, nend) = self.rdr.read_record(
                &input[pos..],
                &mut self.out[self.nout..],
                &mut self.ends[self.nend..],
            );
            pos += nin;
            self.nout += nout;
            self.nend += nend;
            self.record_bytes += nin;
            // The line end is read with the record: allow for CRLF.
            if self.record_bytes > MAX_LINE + 2 {
                return Err(self.line_too_long());
            }
            match res {
                R::InputEmpty => return Ok(()),
                R::OutputFull => return Err(self.line_too_long()),
                R::OutputEndsFull => {
                    return Err(FileError::one(
                        self.which(),
                        format!("more than {MAX_FIELDS} fields"),
                    ));
                }
                R::Record => {
                    let r = self.record(sink);
                    self.nout = 0;
                    self.nend = 0;
                    self.record_bytes = 0;
                    r?;
                }
                R::End => {
                    self.done = true;
                    return Ok(());
                }
            }
        }
    }

    fn record(&mut self, sink: &mut Vec<RawRow>) -> Result<(), FileError> {
        let mut fields: Vec<&[u8]> = Vec::with_capacity(self.nend);
        let mut start = 0;
        for &end in &self.ends[..self.nend] {
            fields.push(&self.out[start..end]);
            start = end;
        }
        // A blank line is no row.
        if fields.len() == 1 && fields[0].iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Some(columns) = &self.columns else {
            self.columns = Some(header(&fields)?);
            return Ok(());
        };
        self.rows += 1;
        if self.rows > MAX_ROWS {
            return Err(too_many_rows());
        }
        let mut row = RawRow {
            row_no: self.rows,
            ..RawRow::default()
        };
        if fields.len() != columns.len() {
            row.problem = Some((
                "row".to_owned(),
                format!(
                    "has {} fields where the header has {}",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        for (c, f) in columns.iter().zip(&fields) {
            match std::str::from_utf8(f) {
                Ok(s) => {
                    let s = s.trim();
                    row.set(*c, (!s.is_empty()).then(|| s.to_owned()));
                }
                Err(_) => {
                    row.problem
                        .get_or_insert_with(|| (c.name().to_owned(), "is not UTF-8".into()));
                }
            }
        }
        sink.push(row);
        Ok(())
    }
}

fn header(fields: &[&[u8]]) -> Result<Vec<Column>, FileError> {
    let mut columns = Vec::with_capacity(fields.len());
    let mut errors = Vec::new();
    for f in fields {
        let name = String::from_utf8_lossy(f).trim().to_ascii_lowercase();
        match Column::named(&name) {
            Some(c) if columns.contains(&c) => {
                errors.push(DomainError::invalid(name.clone(), "column given twice"));
            }
            Some(c) => columns.push(c),
            None => errors.push(DomainError::invalid(
                if name.is_empty() { "header".into() } else { name.chars().take(64).collect::<String>() },
                "unknown column; the columns are bank_reference, value_date, amount and loan_id or bank_account_no",
            )),
        }
    }
    for required in [Column::BankReference, Column::ValueDate, Column::Amount] {
        if !columns.contains(&required) {
            errors.push(DomainError::invalid(required.name(), "missing column"));
        }
    }
    if !columns.contains(&Column::LoanId) && !columns.contains(&Column::BankAccountNo) {
        errors.push(DomainError::invalid(
            "loan_id",
            "missing column: give loan_id or bank_account_no (or both)",
        ));
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(FileError(errors))
    }
}

// ---- validation -----------------------------------------------------------------------------

/// Which loan a row pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Loan(Uuid),
    Account(String),
}

/// A row that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRow {
    pub reference: String,
    pub value_date: NaiveDate,
    pub amount: Money,
    pub target: Target,
}

/// Checks one row's values; the error names the field (`DomainError::Invalid`).
pub fn validate(raw: &RawRow, today: NaiveDate) -> Result<ParsedRow, DomainError> {
    if let Some((field, message)) = &raw.problem {
        return Err(DomainError::invalid(field, message.clone()));
    }
    let reference = raw
        .bank_reference
        .clone()
        .ok_or_else(|| DomainError::invalid("bank_reference", "is required"))?;
    check_text("bank_reference", &reference, MAX_REFERENCE)?;
    let date = raw
        .value_date
        .as_deref()
        .ok_or_else(|| DomainError::invalid("value_date", "is required"))?;
    let value_date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| date.len() == 10)
        .ok_or_else(|| DomainError::invalid("value_date", "must be a date like 2026-11-27"))?;
    check_business_date("value_date", value_date, today)?;
    let amount = raw
        .amount
        .as_deref()
        .ok_or_else(|| DomainError::invalid("amount", "is required"))?;
    let amount = Money::parse(amount).map_err(|e| DomainError::invalid("amount", e.message()))?;
    if amount.is_zero() {
        return Err(DomainError::invalid("amount", "must be positive"));
    }
    let target = match (&raw.loan_id, &raw.bank_account_no) {
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid(
                "loan_id",
                "give either loan_id or bank_account_no, not both",
            ))
        }
        (None, None) => {
            return Err(DomainError::invalid(
                "loan_id",
                "give loan_id or bank_account_no",
            ))
        }
        (Some(id), None) => Target::Loan(
            Uuid::parse_str(id).map_err(|_| DomainError::invalid("loan_id", "must be a UUID"))?,
        ),
        (None, Some(acc)) => {
            check_text("bank_account_no", acc, MAX_REFERENCE)?;
            Target::Account(acc.clone())
        }
    };
    Ok(ParsedRow {
        reference,
        value_date,
        amount,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Result<Vec<RawRow>, FileError> {
        let mut csv = CsvRows::default();
        let mut rows = Vec::new();
        for c in chunks {
            csv.feed(c, &mut rows)?;
        }
        csv.feed(&[], &mut rows)?;
        Ok(rows)
    }

    #[test]
    fn csv_rows_across_chunk_boundaries_with_quotes_bom_and_crlf() {
        let file = "\u{feff}bank_reference,value_date,amount,loan_id\r\n\"R,1\",2025-02-15,1043.50,x\r\n\"R \"\"2\"\"\",2025-02-16,\"1,0\",y\n\nR3,2025-02-17,5,z";
        let bytes = file.as_bytes();
        for split in 1..bytes.len() {
            let rows = parse_all(&[&bytes[..split], &bytes[split..]]).unwrap();
            assert_eq!(rows.len(), 3, "split at {split}");
            assert_eq!(rows[0].bank_reference.as_deref(), Some("R,1"));
            assert_eq!(rows[1].bank_reference.as_deref(), Some("R \"2\""));
            assert_eq!(rows[1].amount.as_deref(), Some("1,0"));
            assert_eq!(rows[2].loan_id.as_deref(), Some("z"));
            assert_eq!(rows[2].row_no, 3);
        }
    }

    #[test]
    fn header_problems_name_the_column() {
        let err = parse_all(&[b"bank_reference,value_date,amount,loan,loan_id\n"]).unwrap_err();
        assert_eq!(err.field(), Some("loan"));
        let err = parse_all(&[b"bank_reference,value_date,loan_id\n"]).unwrap_err();
        assert_eq!(err.field(), Some("amount"));
        let err = parse_all(&[b"amount,amount\n"]).unwrap_err();
        assert_eq!(err.field(), Some("amount"));
    }

    #[test]
    fn long_records_and_bad_fields() {
        let long = format!(
            "bank_reference,value_date,amount,loan_id\nR1,{},1,x\n",
            "9".repeat(MAX_LINE)
        );
        let err = parse_all(&[long.as_bytes()]).unwrap_err();
        assert_eq!(err.field(), Some("row 1"));
        let many = format!("{}\n", ",".repeat(MAX_FIELDS));
        assert_eq!(
            parse_all(&[many.as_bytes()]).unwrap_err().field(),
            Some("header")
        );
        // One BOM is skipped, however the file is cut; a second is part of the first column.
        let twice = b"\xef\xbb\xbf\xef\xbb\xbfbank_reference,value_date,amount,loan_id\n";
        for cut in 1..twice.len() {
            let err = parse_all(&[&twice[..cut], &twice[cut..]]).unwrap_err();
            assert_eq!(err.field(), Some("\u{feff}bank_reference"), "cut at {cut}");
        }
        let rows = parse_all(&[
            b"bank_reference,value_date,amount,loan_id\nR1,2025-01-01\nR2,2025-01-01,\xff,x\n",
        ])
        .unwrap();
        assert_eq!(rows[0].problem.as_ref().unwrap().0, "row");
        assert_eq!(rows[1].problem.as_ref().unwrap().0, "amount");
    }

    #[test]
    fn rows_are_validated_field_by_field() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let row = |date: &str, amount: &str| RawRow {
            row_no: 1,
            bank_reference: Some("R1".into()),
            value_date: Some(date.into()),
            amount: Some(amount.into()),
            loan_id: Some(Uuid::nil().to_string()),
            ..RawRow::default()
        };
        assert!(validate(&row("2026-11-27", "1.00"), today).is_ok());
        let field = |r: RawRow| validate(&r, today).unwrap_err().field().unwrap().to_owned();
        assert_eq!(field(row("2026-11-28", "1.00")), "value_date");
        assert_eq!(field(row("2026-2-1", "1.00")), "value_date");
        assert_eq!(field(row("1989-12-31", "1.00")), "value_date");
        assert_eq!(field(row("2026-11-27", "1.001")), "amount");
        assert_eq!(field(row("2026-11-27", "0")), "amount");
        assert_eq!(field(row("2026-11-27", "12345678901234567")), "amount");
        let mut both = row("2026-11-27", "1");
        both.bank_account_no = Some("A".into());
        assert_eq!(field(both), "loan_id");
        let mut long = row("2026-11-27", "1");
        long.bank_reference = Some("R".repeat(65));
        assert_eq!(field(long), "bank_reference");
    }
}
