//! Stacked bar charts as SVG, drawn on the server: the geometry here, the
//! markup in `templates/chart.html`, the colours in the stylesheet (CSS
//! classes, so no inline style is needed under the CSP).
//!
//! Why not a chart crate: a stacked bar chart is a list of rectangles;
//! `plotters`' SVG backend would add three crates and write presentation
//! attributes we would restyle anyway. Why not a JS library: it needs a
//! script, a vendored bundle and data endpoints; server-side SVG needs none
//! and renders before the page is shown.

use serde::Serialize;

/// The classes a bar is stacked from, bottom up (CSS classes and legend).
pub const SERIES: [&str; 4] = ["delivered", "retried", "failed", "expired"];

pub const WIDTH: f64 = 480.0;
pub const HEIGHT: f64 = 120.0;

#[derive(Debug, Serialize, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct Chart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    /// The tallest bar's total, for the axis label.
    pub max: u64,
    pub first_label: String,
    pub last_label: String,
}

/// One chart from `buckets[i][series]` counts; `labels` name the first and
/// last bucket.
pub fn stacked(title: String, buckets: &[[u64; 4]], labels: (String, String)) -> Chart {
    let max = buckets
        .iter()
        .map(|b| b.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let slot = WIDTH / buckets.len().max(1) as f64;
    let scale = if max == 0 { 0.0 } else { HEIGHT / max as f64 };
    let mut bars = Vec::new();
    for (i, counts) in buckets.iter().enumerate() {
        let mut top = HEIGHT;
        for (s, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let h = n as f64 * scale;
            top -= h;
            bars.push(Bar {
                x: round(i as f64 * slot + 1.0),
                y: round(top),
                width: round((slot - 2.0).max(1.0)),
                height: round(h),
                class: SERIES[s],
                title: format!("{n} {}", SERIES[s]),
            });
        }
    }
    Chart {
        title,
        width: WIDTH,
        height: HEIGHT,
        bars,
        max,
        first_label: labels.0,
        last_label: labels.1,
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_bottom_up_and_scale_to_the_tallest() {
        let c = stacked(
            "t".into(),
            &[[2, 0, 1, 0], [0, 0, 0, 0], [6, 0, 0, 0]],
            ("a".into(), "b".into()),
        );
        assert_eq!(c.max, 6);
        assert_eq!(c.bars.len(), 3, "zero counts draw nothing");
        let (d, f) = (&c.bars[0], &c.bars[1]);
        assert_eq!((d.class, f.class), ("delivered", "failed"));
        assert_eq!(d.height, 40.0);
        assert_eq!(d.y + d.height, HEIGHT, "delivered sits on the axis");
        assert_eq!(f.y + f.height, d.y, "failed sits on delivered");
        assert_eq!(c.bars[2].height, HEIGHT);
    }

    #[test]
    fn an_empty_window_is_an_empty_chart() {
        let c = stacked("t".into(), &[[0; 4]; 12], (String::new(), String::new()));
        assert!(c.bars.is_empty());
        assert_eq!(c.max, 0);
    }
}
