//! Charts as inline SVG drawn on the server: no script, no font files, nothing fetched.
//! The figures arrive already computed; a chart only scales them to pixels.
use maud::{html, Markup};

const BLUE: &str = "#2563eb";

/// One bar: its label, its length, and the text printed at its end.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
    /// A link for the label (drill-down), if any.
    pub href: Option<String>,
}

/// Horizontal bars, in the order given, scaled to the largest value (or to `max` when set,
/// e.g. 100 for percentages).
pub fn bars(title: &str, items: &[Bar], max: Option<f64>, empty: &str) -> Markup {
    let top = max
        .unwrap_or_else(|| items.iter().map(|b| b.value).fold(0.0, f64::max))
        .max(f64::MIN_POSITIVE);
    let row_h = 22.0;
    let (label_w, bar_w, text_w) = (130.0, 300.0, 110.0);
    let height = row_h * items.len() as f64 + 8.0;
    let width = label_w + bar_w + text_w;
    html! {
        figure.chart {
            figcaption { (title) }
            @if items.is_empty() {
                p.empty { (empty) }
            } @else {
                svg viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(title)
                    xmlns="http://www.w3.org/2000/svg" {
                    @for (i, b) in items.iter().enumerate() {
                        @let y = 4.0 + row_h * i as f64;
                        @let w = (b.value.max(0.0) / top * bar_w).min(bar_w);
                        @if let Some(href) = &b.href {
                            a href=(href) {
                                text x=(label_w - 6.0) y=(y + 15.0) text-anchor="end" class="link" { (b.label) }
                            }
                        } @else {
                            text x=(label_w - 6.0) y=(y + 15.0) text-anchor="end" { (b.label) }
                        }
                        rect x=(label_w) y=(y + 3.0) width=(format!("{w:.1}")) height=(row_h - 6.0) fill=(BLUE) rx="2" {
                            title { (b.label) ": " (b.text) }
                        }
                        text x=(label_w + w + 4.0) y=(y + 15.0) { (b.text) }
                    }
                }
            }
        }
    }
}

/// A line over labelled points (e.g. the twelve months); a `None` leaves a gap.
pub fn line(title: &str, points: &[(String, Option<f64>)], fmt: fn(f64) -> String) -> Markup {
    let (w, h, left, bottom, top_pad) = (520.0, 220.0, 70.0, 24.0, 12.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top_pad;
    let values: Vec<f64> = points.iter().filter_map(|(_, v)| *v).collect();
    let hi = values.iter().copied().fold(0.0, f64::max);
    let lo = values.iter().copied().fold(hi, f64::min).min(0.0);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + plot_w * i as f64 / n;
    let y = |v: f64| top_pad + plot_h * (1.0 - (v - lo) / span);
    // Runs of consecutive known values, each drawn as one polyline.
    let mut runs: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => current.push_str(&format!("{:.1},{:.1} ", x(i), y(*v))),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title)
                xmlns="http://www.w3.org/2000/svg" {
                @for f in [0.0, 0.5, 1.0] {
                    @let v = lo + span * f;
                    line x1=(left) x2=(w - 10.0) y1=(y(v)) y2=(y(v)) stroke="#ddd" {}
                    text x=(left - 4.0) y=(y(v) + 4.0) text-anchor="end" class="axis" { (fmt(v)) }
                }
                @for (i, (label, _)) in points.iter().enumerate() {
                    text x=(x(i)) y=(h - 6.0) text-anchor="middle" class="axis" { (label) }
                }
                @for run in &runs {
                    polyline points=(run) fill="none" stroke=(BLUE) stroke-width="2" {}
                }
                @for (i, (label, v)) in points.iter().enumerate() {
                    @if let Some(v) = v {
                        circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="3" fill=(BLUE) {
                            title { (label) ": " (fmt(*v)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars(
            "t",
            &[
                Bar {
                    label: "<a>".into(),
                    value: 50.0,
                    text: "50".into(),
                    href: None,
                },
                Bar {
                    label: "b".into(),
                    value: 100.0,
                    text: "100".into(),
                    href: Some("/x?a=1&b=2".into()),
                },
            ],
            None,
            "none",
        )
        .into_string();
        assert!(svg.contains("width=\"150.0\""), "{svg}");
        assert!(svg.contains("width=\"300.0\""), "{svg}");
        assert!(svg.contains("&lt;a&gt;"));
        assert!(svg.contains("href=\"/x?a=1&amp;b=2\""));
    }

    #[test]
    fn line_leaves_gaps_for_missing_points() {
        let pts = vec![
            ("1".into(), Some(1.0)),
            ("2".into(), Some(2.0)),
            ("3".into(), None),
            ("4".into(), Some(3.0)),
            ("5".into(), Some(1.0)),
        ];
        let svg = line("t", &pts, |v| format!("{v:.0}")).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
    }
}
