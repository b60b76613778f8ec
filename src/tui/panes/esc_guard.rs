//! One meaning of Esc and Ctrl+s in every editor: Ctrl+s applies, Esc
//! cancels. Esc cancels at once when nothing changed; with changes, the
//! first Esc only asks and a second one discards, so one stray Esc never
//! throws typing away.

/// The key hint every editor shows in its title.
pub const EDITOR_KEYS: &str = "Ctrl+s apply · Esc cancel";
/// The hint after a first Esc on changed text.
pub const ASK_DISCARD: &str = "Esc again discards · Ctrl+s applies";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EscGuard {
    asking: bool,
}

impl EscGuard {
    /// An Esc: whether the editor should close, dropping its text.
    pub fn cancels(&mut self, changed: bool) -> bool {
        if !changed || self.asking {
            self.asking = false;
            return true;
        }
        self.asking = true;
        false
    }

    /// Any other key takes the question back.
    pub fn settle(&mut self) {
        self.asking = false;
    }

    /// What Esc and Ctrl+s do now, for the editor's title.
    pub fn hint(&self) -> &'static str {
        if self.asking {
            ASK_DISCARD
        } else {
            EDITOR_KEYS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ASK_DISCARD, EDITOR_KEYS, EscGuard};

    #[test]
    fn esc_on_changed_text_asks_once_then_cancels() {
        let mut guard = EscGuard::default();
        assert!(guard.cancels(false), "nothing changed: cancel at once");
        assert!(!guard.cancels(true), "changed: ask first");
        assert_eq!(guard.hint(), ASK_DISCARD);
        guard.settle();
        assert_eq!(guard.hint(), EDITOR_KEYS, "typing takes the question back");
        assert!(!guard.cancels(true));
        assert!(guard.cancels(true), "a second Esc discards");
    }
}
