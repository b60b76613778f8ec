//! Learning-rate schedules with linear warmup, as transformers defines them.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub shape: Shape,
}

impl Schedule {
    pub fn new(
        peak: f64,
        shape: &str,
        warmup_steps: Option<usize>,
        warmup_ratio: f64,
        total: usize,
    ) -> Self {
        let shape = match shape {
            "constant" => Shape::Constant,
            "linear" => Shape::Linear,
            _ => Shape::Cosine,
        };
        let warmup = warmup_steps.unwrap_or_else(|| (warmup_ratio * total as f64).ceil() as usize);
        Schedule {
            peak,
            warmup,
            total: total.max(1),
            shape,
        }
    }

    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let factor = match self.shape {
            Shape::Constant => 1.0,
            Shape::Linear => 1.0 - progress,
            Shape::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        self.peak * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let s = Schedule::new(1.0, "cosine", None, 0.1, 100);
        assert_eq!(s.warmup, 10);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.5).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(55) - 0.5).abs() < 1e-12);
        assert!(s.lr(100) < 1e-12);
        let l = Schedule::new(2.0, "linear", Some(0), 0.0, 10);
        assert!((l.lr(5) - 1.0).abs() < 1e-12);
        assert_eq!(Schedule::new(3.0, "constant", Some(2), 0.0, 10).lr(7), 3.0);
    }
}
