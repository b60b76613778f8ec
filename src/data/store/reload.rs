//! Reloading a file that another program changed, keeping the user's
//! pending changes.
//!
//! A record is known by its bytes as the store first read them: an edit or a
//! removal is re-applied to the record of the new file with exactly those
//! bytes (the n-th copy to the n-th, when several are identical). What the
//! other program changed stays as it wrote it. A pending change whose record
//! is gone or was changed on disk is never dropped silently: an edit is kept
//! as a new record where the old one stood, so both versions are there to
//! compare, and a removal is not applied (the other program's version
//! stays); both are listed in [`Reloaded::unmatched`]. Added records keep
//! their place after the record they followed.

use super::{ADDED, Store, StoreError};
use std::collections::{HashMap, HashSet, VecDeque};

/// The store read anew, with the pending changes re-applied.
pub struct Reloaded {
    pub store: Store,
    /// Edits and removals re-applied to their record.
    pub reapplied: usize,
    pub unmatched: Vec<Unmatched>,
}

/// A pending change whose record the new file no longer holds as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub kind: UnmatchedKind,
    /// 1-based line of the record in the file as it was opened.
    pub line: usize,
    /// For an edit: the position of the record now holding the user's text.
    pub kept_at: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedKind {
    /// Kept as a new record.
    Edit,
    /// Not applied: the record on disk stays.
    Removal,
}

/// Where each found original record is in the new file, and the bytes of
/// every one looked for.
type Matches = (HashMap<u32, usize>, HashMap<u32, Vec<u8>>);

/// A record of the old document to be placed among the new file's.
struct Text {
    text: String,
    /// Its entry in the unmatched list, for an edit that found no record.
    unmatched: Option<usize>,
}

impl Store {
    /// Opens the file as it is on disk now and re-applies this store's
    /// pending changes to it (see the module notes).
    pub fn reload(&self) -> Result<Reloaded, StoreError> {
        let mut fresh = Store::open(&self.path)?;
        let doc: Vec<u32> = (0..self.len()).map(|i| self.row(i)).collect();
        let mut in_doc = vec![false; self.index.len()];
        // Original records whose new position matters: edited and removed
        // ones (touched), and the one before each edit or addition (its
        // anchor).
        let mut touched = Vec::new();
        let mut anchors = Vec::new();
        for (i, &row) in doc.iter().enumerate() {
            if row < ADDED {
                in_doc[row as usize] = true;
            }
            let edited = row < ADDED && self.edits.contains_key(&row);
            if edited {
                touched.push(row);
            }
            if (edited || row >= ADDED) && i > 0 && doc[i - 1] < ADDED {
                anchors.push(doc[i - 1]);
            }
        }
        let removed: Vec<u32> = (0..self.index.len() as u32)
            .filter(|&r| !in_doc[r as usize])
            .collect();
        touched.extend(&removed);
        touched.sort_unstable();
        anchors.sort_unstable();
        anchors.dedup();
        anchors.retain(|r| touched.binary_search(r).is_err());
        let (matched, originals) = self.match_records(&fresh, &touched, &anchors)?;

        let mut unmatched = Vec::new();
        let mut reapplied = 0;
        let mut at_start: Vec<Text> = Vec::new();
        let mut after: HashMap<usize, Vec<Text>> = HashMap::new();
        let mut place = |anchor: Option<usize>, text: Text| match anchor {
            None => at_start.push(text),
            Some(j) => after.entry(j).or_default().push(text),
        };
        let mut edits = HashMap::new();
        let mut anchor = None;
        for &row in &doc {
            if row >= ADDED {
                let text = self.added[(row - ADDED) as usize].clone();
                place(
                    anchor,
                    Text {
                        text,
                        unmatched: None,
                    },
                );
                continue;
            }
            let edit = self.edits.get(&row);
            match (matched.get(&row), edit) {
                (Some(&j), edit) => {
                    anchor = Some(j);
                    if let Some(text) = edit {
                        edits.insert(j, (row, text.clone()));
                        reapplied += 1;
                    }
                }
                (None, Some(text)) => {
                    unmatched.push(Unmatched {
                        kind: UnmatchedKind::Edit,
                        line: self.index.line(row as usize),
                        kept_at: None,
                    });
                    let unmatched = Some(unmatched.len() - 1);
                    place(
                        anchor,
                        Text {
                            text: text.clone(),
                            unmatched,
                        },
                    );
                }
                (None, None) => {}
            }
        }
        let mut removed_now = HashSet::new();
        for row in removed {
            match matched.get(&row) {
                Some(&j) => {
                    removed_now.insert(j);
                    // Still pending: the next reload matches it by these bytes.
                    fresh.originals.insert(j as u32, originals[&row].clone());
                    reapplied += 1;
                }
                None => unmatched.push(Unmatched {
                    kind: UnmatchedKind::Removal,
                    line: self.index.line(row as usize),
                    kept_at: None,
                }),
            }
        }

        let mut rows = Vec::with_capacity(fresh.len() + self.added.len());
        let mut add = |fresh: &mut Store, rows: &mut Vec<u32>, item: Text| {
            if let Some(u) = item.unmatched {
                unmatched[u].kept_at = Some(rows.len());
            }
            rows.push(ADDED + fresh.added.len() as u32);
            fresh.added.push(item.text);
        };
        for item in at_start {
            add(&mut fresh, &mut rows, item);
        }
        for j in 0..fresh.index.len() {
            if !removed_now.contains(&j) {
                rows.push(j as u32);
            }
            for item in after.remove(&j).unwrap_or_default() {
                add(&mut fresh, &mut rows, item);
            }
        }
        for (j, (old_row, text)) in edits {
            fresh
                .originals
                .insert(j as u32, originals[&old_row].clone());
            fresh.edits.insert(j as u32, text);
        }
        fresh.dirty = !fresh.edits.is_empty() || !fresh.added.is_empty() || !removed_now.is_empty();
        if fresh.dirty {
            fresh.rows = Some(rows);
        }
        Ok(Reloaded {
            store: fresh,
            reapplied,
            unmatched,
        })
    }

    /// Finds the `touched` and then the `anchors` original records (each
    /// ascending) in `fresh` by their bytes, so a pending change wins a
    /// record over a mere anchor; returns where each found one is now, and
    /// the bytes of all. Records never read before are read from the file
    /// opened only if it still holds what was indexed: written over in
    /// place, its offsets point into other records.
    fn match_records(
        &self,
        fresh: &Store,
        touched: &[u32],
        anchors: &[u32],
    ) -> Result<Matches, StoreError> {
        let unread = touched
            .iter()
            .chain(anchors)
            .any(|r| !self.originals.contains_key(r));
        let disk_trusted = unread && self.source_intact()?;
        let mut originals = HashMap::new();
        for &row in touched.iter().chain(anchors) {
            let bytes = match self.originals.get(&row) {
                Some(bytes) => bytes.clone(),
                None if disk_trusted => match self.disk_record(row) {
                    Ok(bytes) => bytes,
                    Err(_) => continue,
                },
                // Unknown: it matches nothing.
                None => continue,
            };
            originals.insert(row, bytes);
        }
        let mut found: HashMap<Vec<u8>, VecDeque<usize>> = originals
            .values()
            .map(|bytes| (bytes.clone(), VecDeque::new()))
            .collect();
        let lengths: HashSet<usize> = found.keys().map(Vec::len).collect();
        fresh
            .visit(|record| {
                if lengths.contains(&record.bytes.len())
                    && let Some(at) = found.get_mut(record.bytes)
                {
                    at.push_back(record.index);
                }
                Ok(())
            })
            .map_err(|e| fresh.io_error(e))?;
        let mut matched = HashMap::new();
        for &row in touched.iter().chain(anchors) {
            if let Some(at) = originals.get(&row).and_then(|b| found.get_mut(b))
                && let Some(j) = at.pop_front()
            {
                matched.insert(row, j);
            }
        }
        Ok((matched, originals))
    }
}
