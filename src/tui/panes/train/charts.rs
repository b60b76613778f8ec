//! The live charts: which one is shown (all in a grid, or one large), and
//! drawing one from a run's series with ratatui's `Chart`.

use super::fmt;
use super::follow::Metrics;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, GraphType, LegendPosition, Paragraph,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Loss,
    Eval,
    Lr,
    Speed,
    Grad,
}

impl ChartKind {
    pub const ALL: [ChartKind; 5] = [
        ChartKind::Loss,
        ChartKind::Eval,
        ChartKind::Lr,
        ChartKind::Speed,
        ChartKind::Grad,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ChartKind::Loss => "train loss",
            ChartKind::Eval => "eval loss",
            ChartKind::Lr => "learning rate",
            ChartKind::Speed => "tokens/s",
            ChartKind::Grad => "grad norm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartView {
    /// The five charts and the run's details, 3 × 2.
    Grid,
    One(ChartKind),
}

impl ChartView {
    /// Grid, then each chart alone, and round again.
    pub fn step(self, delta: isize) -> ChartView {
        let order: Vec<ChartView> = std::iter::once(ChartView::Grid)
            .chain(ChartKind::ALL.map(ChartView::One))
            .collect();
        let n = order.len() as isize;
        let at = order.iter().position(|v| *v == self).unwrap_or(0) as isize;
        order[((at + delta) % n + n) as usize % order.len()]
    }

    pub fn toggle(self) -> ChartView {
        match self {
            ChartView::Grid => ChartView::One(ChartKind::Loss),
            ChartView::One(_) => ChartView::Grid,
        }
    }

    /// The chart in grid cell `index` (the sixth cell, details, keeps the grid).
    pub fn at(index: usize) -> ChartView {
        ChartKind::ALL
            .get(index)
            .map_or(ChartView::Grid, |&k| ChartView::One(k))
    }
}

/// The grid's six cells, row by row.
pub fn grid(area: Rect) -> [Rect; 6] {
    let rows = Layout::vertical([Constraint::Ratio(1, 2); 2]).split(area);
    let mut cells = [Rect::default(); 6];
    for (r, row) in rows.iter().enumerate() {
        let cols = Layout::horizontal([Constraint::Ratio(1, 3); 3]).split(*row);
        for (c, col) in cols.iter().enumerate() {
            cells[r * 3 + c] = *col;
        }
    }
    cells
}

struct Series<'a> {
    name: &'static str,
    points: &'a [(f64, f64)],
    color: Color,
}

fn series<'a>(kind: ChartKind, m: &'a Metrics, theme: &Theme, large: bool) -> Vec<Series<'a>> {
    let one = |name, points, color| Series {
        name,
        points,
        color,
    };
    match kind {
        ChartKind::Loss => {
            let mut all = vec![
                one("loss", &m.loss[..], theme.chart_loss),
                one("ema", &m.smooth[..], theme.chart_smooth),
            ];
            if large {
                all.push(one("eval", &m.eval[..], theme.chart_eval));
            }
            all
        }
        ChartKind::Eval => vec![one("eval", &m.eval[..], theme.chart_eval)],
        ChartKind::Lr => vec![one("lr", &m.lr[..], theme.chart_lr)],
        ChartKind::Speed => vec![one("tok/s", &m.tok_s[..], theme.chart_speed)],
        ChartKind::Grad => vec![one("grad", &m.grad_norm[..], theme.chart_grad)],
    }
}

/// `[lo, hi]` over the points, widened a little (and when flat), but never
/// across zero: a learning rate warming up from 0 has no negative axis.
fn bounds(values: impl Iterator<Item = f64>) -> Option<[f64; 2]> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1e-12) * 0.1
    };
    let floor = if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
    Some([(lo - pad).max(floor), hi + pad])
}

/// Draws one chart of `metrics` (None: no run attached) into `area`.
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    kind: ChartKind,
    metrics: Option<&Metrics>,
    theme: &Theme,
    large: bool,
) {
    let last = metrics.and_then(|m| series(kind, m, theme, false)[0].points.last().copied());
    let title = match last {
        Some((_, v)) => format!(" {} {} ", kind.title(), fmt::axis(v)),
        None => format!(" {} ", kind.title()),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(false))
        .title(Span::styled(title, theme.title()));
    let Some(m) = metrics.filter(|m| !series(kind, m, theme, large)[0].points.is_empty()) else {
        let text = if metrics.is_some() {
            "waiting for data"
        } else {
            "no run"
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dimmed()))
                .alignment(Alignment::Center)
                .block(block),
            area,
        );
        return;
    };
    let all = series(kind, m, theme, large);
    let points = || all.iter().flat_map(|s| s.points.iter());
    // The steps the data covers (the gauge shows how far that is).
    let x_hi = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let x_lo = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x = [x_lo.min(x_hi - 1.0).max(0.0), x_hi.max(1.0)];
    let y = bounds(points().map(|p| p.1)).unwrap_or([0.0, 1.0]);
    let datasets: Vec<Dataset> = all
        .iter()
        .map(|s| {
            let dataset = Dataset::default()
                .marker(Marker::Braille)
                .graph_type(if s.points.len() < 2 {
                    GraphType::Scatter
                } else {
                    GraphType::Line
                })
                .style(Style::default().fg(s.color))
                .data(s.points);
            if all.len() > 1 {
                dataset.name(s.name)
            } else {
                dataset
            }
        })
        .collect();
    let axis_style = theme.dimmed();
    let y_labels = if large {
        vec![
            fmt::axis(y[0]),
            fmt::axis((y[0] + y[1]) / 2.0),
            fmt::axis(y[1]),
        ]
    } else {
        vec![fmt::axis(y[0]), fmt::axis(y[1])]
    };
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(Some(LegendPosition::TopRight))
        .x_axis(
            Axis::default()
                .style(axis_style)
                .bounds(x)
                .labels([format!("{:.0}", x[0]), format!("{:.0}", x[1])]),
        )
        .y_axis(Axis::default().style(axis_style).bounds(y).labels(y_labels));
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_cycle_and_cells_map_to_charts() {
        let mut v = ChartView::Grid;
        for kind in ChartKind::ALL {
            v = v.step(1);
            assert_eq!(v, ChartView::One(kind));
        }
        assert_eq!(v.step(1), ChartView::Grid);
        assert_eq!(ChartView::Grid.step(-1), ChartView::One(ChartKind::Grad));
        assert_eq!(ChartView::at(2), ChartView::One(ChartKind::Lr));
        assert_eq!(ChartView::at(5), ChartView::Grid);
        assert_eq!(bounds([2.0, 2.0].into_iter()), Some([1.8, 2.2]));
        assert_eq!(bounds(std::iter::empty()), None);
        let [lo, hi] = bounds([0.0, 1e-3].into_iter()).unwrap();
        assert!(lo == 0.0 && hi > 1e-3, "no axis below zero: {lo} {hi}");
        let [lo, _] = bounds([-1.0, 1.0].into_iter()).unwrap();
        assert!(lo < -1.0, "negative data keeps its margin");
    }
}
