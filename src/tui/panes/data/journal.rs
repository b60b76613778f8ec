//! Record-level changes made since a worker took its snapshot of the store,
//! so record indices in its late report can be carried over to the store as
//! it stands now.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Set(usize),
    Insert(usize),
    Remove(usize),
}

#[derive(Debug, Default, Clone)]
pub struct Journal {
    changes: Vec<Change>,
}

impl Journal {
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Where the snapshot's record `i` is now; `None` if it was removed.
    pub fn map(&self, i: usize) -> Option<usize> {
        let mut i = i;
        for change in &self.changes {
            match *change {
                Change::Insert(at) if i >= at => i += 1,
                Change::Remove(at) if i == at => return None,
                Change::Remove(at) if i > at => i -= 1,
                _ => {}
            }
        }
        Some(i)
    }

    /// Current indices of the records edited or inserted since the snapshot.
    pub fn touched(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for change in &self.changes {
            match *change {
                Change::Set(at) => out.push(at),
                Change::Insert(at) => {
                    super::list::on_insert(&mut out, at, |r| r);
                    out.push(at);
                }
                Change::Remove(at) => super::list::on_remove(&mut out, at, |r| r),
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_later_changes() {
        let mut j = Journal::default();
        j.push(Change::Insert(2));
        j.push(Change::Remove(5));
        j.push(Change::Set(0));
        assert_eq!(j.map(1), Some(1));
        assert_eq!(j.map(2), Some(3));
        assert_eq!(j.map(4), None);
        assert_eq!(j.map(9), Some(9));
        assert_eq!(j.touched(), vec![0, 2]);
    }
}
