//! One model of a table, drawn twice: as HTML on the page and as an .xlsx download, so the
//! two always show the same rows and columns.
use super::Lang;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};

#[derive(Debug, Clone)]
pub enum Cell {
    Text(String),
    /// Yuan: a number with two decimals.
    Money(Decimal),
    /// A percent (97.53 means 97.53%): a number with two decimals.
    Percent(Option<Decimal>),
    /// A multiple such as a leverage (4 decimals in the API; two shown).
    Ratio(Option<Decimal>),
    Count(i64),
    Empty,
}

pub struct Row {
    pub cells: Vec<Cell>,
    /// Where the first cell links to (a drill-down), if anywhere.
    pub href: Option<String>,
}

pub struct Table {
    /// Used in the download's address: `regions`, `months`, `funds`, `overdue`.
    pub id: &'static str,
    pub title: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Row>,
    /// The total, when the table has one.
    pub total: Option<Row>,
}

fn two(d: Decimal) -> String {
    let mut d = d.round_dp(2);
    d.rescale(2);
    // Thousands separators, as a reader of money expects.
    let s = d.abs().to_string();
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped}.{frac}")
}

/// The cell as text on the page.
pub fn show(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.clone(),
        Cell::Money(d) => two(*d),
        Cell::Percent(Some(d)) => format!("{}%", two(*d)),
        Cell::Ratio(Some(d)) => two(*d),
        Cell::Count(n) => n.to_string(),
        Cell::Percent(None) | Cell::Ratio(None) | Cell::Empty => "—".into(),
    }
}

impl Table {
    /// The table on the page, with its "download Excel" link (`xlsx_href`).
    pub fn html(&self, lang: Lang, xlsx_href: &str) -> Markup {
        let numeric = |c: &Cell| !matches!(c, Cell::Text(_));
        html! {
            section.table id=(format!("table-{}", self.id)) {
                div.table-head {
                    h2 { (self.title) }
                    a.download href=(xlsx_href) download { (lang.t("下载 Excel", "Download Excel")) }
                }
                div.scroll {
                    table {
                        thead { tr { @for h in &self.headers { th { (h) } } } }
                        tbody {
                            @if self.rows.is_empty() {
                                tr { td colspan=(self.headers.len()) { (lang.t("无数据", "No data")) } }
                            }
                            @for r in self.rows.iter().chain(self.total.iter()) {
                                tr {
                                    @for (i, c) in r.cells.iter().enumerate() {
                                        td.num[numeric(c)] {
                                            @if let (0, Some(h)) = (i, &r.href) {
                                                a href=(h) { (show(c)) }
                                            } @else {
                                                (show(c))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The table as an .xlsx workbook: the title and the filters on top, then the headers and
    /// the rows, numbers as numbers with two decimals.
    pub fn xlsx(&self, filters: &[(String, String)]) -> Result<Vec<u8>, XlsxError> {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name(self.id)?;
        let bold = Format::new().set_bold();
        let head = Format::new()
            .set_bold()
            .set_background_color("#DDEBF7")
            .set_align(FormatAlign::Center);
        let money = Format::new().set_num_format("#,##0.00");
        let plain = Format::new().set_num_format("0.00");
        let count = Format::new().set_num_format("0");
        ws.write_string_with_format(0, 0, &self.title, &bold)?;
        let mut row: u32 = 1;
        for (k, v) in filters {
            ws.write_string_with_format(row, 0, k, &bold)?;
            ws.write_string(row, 1, v)?;
            row += 1;
        }
        row += 1;
        for (c, h) in self.headers.iter().enumerate() {
            let c = u16::try_from(c).unwrap_or(u16::MAX);
            ws.write_string_with_format(row, c, *h, &head)?;
            let width = h
                .chars()
                .map(|ch| if ch.is_ascii() { 1.0 } else { 2.0 })
                .sum::<f64>();
            ws.set_column_width(c, width.max(12.0) + 2.0)?;
        }
        let f = |d: &Decimal| d.round_dp(2).to_f64().unwrap_or(0.0);
        for r in self.rows.iter().chain(self.total.iter()) {
            row += 1;
            for (c, cell) in r.cells.iter().enumerate() {
                let c = u16::try_from(c).unwrap_or(u16::MAX);
                match cell {
                    Cell::Text(s) => {
                        ws.write_string(row, c, s)?;
                    }
                    Cell::Money(d) => {
                        ws.write_number_with_format(row, c, f(d), &money)?;
                    }
                    Cell::Percent(Some(d)) | Cell::Ratio(Some(d)) => {
                        ws.write_number_with_format(row, c, f(d), &plain)?;
                    }
                    Cell::Count(n) => {
                        ws.write_number_with_format(row, c, *n as f64, &count)?;
                    }
                    Cell::Percent(None) | Cell::Ratio(None) | Cell::Empty => {}
                }
            }
        }
        wb.save_to_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn money_shows_two_decimals_and_thousands() {
        assert_eq!(show(&Cell::Money(dec("1234567.5"))), "1,234,567.50");
        assert_eq!(show(&Cell::Money(dec("-12.3"))), "-12.30");
        assert_eq!(show(&Cell::Money(dec("0"))), "0.00");
        assert_eq!(show(&Cell::Percent(Some(dec("97.5")))), "97.50%");
        assert_eq!(show(&Cell::Percent(None)), "—");
    }
}
