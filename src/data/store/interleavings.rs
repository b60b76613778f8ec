//! Random interleavings of edits in the store and changes by another program
//! (appends, replacements, rewrites in place, with the same size and time or
//! not), each save attempt followed by a reload when refused: no line either
//! side wrote is lost without the user being told.

use super::*;
use crate::data::rng::SplitMix64;
use std::collections::HashMap;

/// Every record has the same length, so rewrites can keep the file's size.
fn record(side: char, n: u64) -> String {
    format!("{{\"k\":\"{side}{n:06}\"}}")
}

fn count<'a>(texts: impl IntoIterator<Item = &'a String>) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for t in texts {
        *counts.entry(t.as_str()).or_insert(0) += 1;
    }
    counts
}

struct World {
    seed: u64,
    /// What happened so far, for a failure's message.
    steps: Vec<String>,
    path: PathBuf,
    store: Store,
    rng: SplitMix64,
    next: u64,
    /// The file as the store last read or wrote it.
    synced: Vec<u8>,
    /// Another program wrote since (perhaps putting the same bytes back).
    outside_wrote: bool,
    /// What the records the user edited or removed since the last save
    /// showed.
    touched: Vec<String>,
}

impl World {
    fn at(&self) -> String {
        format!("seed {}, after: {}", self.seed, self.steps.join("; "))
    }

    fn fresh(&mut self, side: char) -> String {
        self.next += 1;
        record(side, self.next)
    }

    /// The records on disk (a file whose records were all deleted keeps
    /// its last line break, a blank line).
    fn disk_lines(&self) -> Vec<String> {
        let mut lines = lines_of(&self.path);
        lines.retain(|l| !l.is_empty());
        lines
    }

    fn app_step(&mut self) {
        let len = self.store.len();
        let at = self.rng.below(len + 1);
        match self.rng.below(3) {
            0 if at < len => {
                let shown = self.store.raw(at).ok();
                let text = self.fresh('u');
                let row = self.store.row(at);
                self.steps.push(format!("edit {at} to {text}"));
                self.store.set_text(at, text);
                self.touched
                    .extend(shown.map(|b| String::from_utf8_lossy(&b).into()));
                self.touched_original(row);
            }
            1 if at < len => {
                let row = self.store.row(at);
                // A file that shrank under the store refuses to read; the
                // user is told and nothing changes.
                self.steps.push(format!("remove {at}"));
                if let Ok(shown) = self.store.remove(at) {
                    self.touched
                        .push(String::from_utf8_lossy(&shown).into_owned());
                    self.touched_original(row);
                }
            }
            _ => {
                let text = self.fresh('u');
                self.steps.push(format!("insert {text} at {at}"));
                self.store.insert_text(at, text);
            }
        }
    }

    /// The record as first read from disk, when the user touched it earlier
    /// (an edit, then a removal): a reload may take that text away.
    fn touched_original(&mut self, row: u32) {
        if let Some(original) = self.store.originals.get(&row) {
            self.touched
                .push(String::from_utf8_lossy(original).into_owned());
        }
    }

    fn outside_step(&mut self) {
        self.outside_wrote = true;
        let mut lines = self.disk_lines();
        let text = self.fresh('o');
        let kind = self.rng.below(5);
        let at = self.rng.below(lines.len().max(1));
        match kind {
            0 => {
                let mut file = OpenOptions::new().append(true).open(&self.path).unwrap();
                writeln!(file, "{text}").unwrap();
                self.steps.push(format!("outside append {text}"));
                return;
            }
            1 if !lines.is_empty() => lines[at] = text,
            2 => lines.insert(at, text),
            3 if !lines.is_empty() => {
                lines.remove(at);
            }
            _ if !lines.is_empty() => lines[at] = text,
            _ => lines.push(text),
        }
        self.steps.push(format!("outside {kind}: {lines:?}"));
        let body = lines.join("\n") + "\n";
        let time = fs::metadata(&self.path).unwrap().modified().unwrap();
        if kind == 1 {
            replace_file(&self.path, &body);
        } else {
            fs::write(&self.path, body).unwrap();
        }
        if kind == 4 {
            // Same size, and the old time put back.
            File::options()
                .write(true)
                .open(&self.path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
    }

    /// Saved: nothing is pending any more.
    fn saved(&mut self) {
        self.synced = fs::read(&self.path).unwrap();
        self.outside_wrote = false;
        self.touched.clear();
    }

    fn save_step(&mut self) {
        // What the user sees (records read from a file rewritten in place
        // may be garbage, or unreadable once it shrank).
        let before: Vec<String> = (0..self.store.len())
            .map(|i| {
                self.store
                    .raw(i)
                    .map_or_else(|e| e.to_string(), |b| String::from_utf8_lossy(&b).into())
            })
            .collect();
        // The user's texts not on disk yet.
        let pending: Vec<String> = (0..self.store.len())
            .filter(|&i| {
                let row = self.store.row(i);
                row >= ADDED || self.store.edits.contains_key(&row)
            })
            .map(|i| String::from_utf8(self.store.raw(i).unwrap()).unwrap())
            .collect();
        let disk_before = self.disk_lines();
        // Another program changed the file since the store read it.
        let outside_changed = fs::read(&self.path).unwrap() != self.synced;
        self.steps.push("save".into());
        match self.store.save() {
            Ok(()) => {
                assert!(
                    !outside_changed,
                    "{}: saved over outside changes",
                    self.at()
                );
                if self.outside_wrote {
                    // Written over in place and put back: the records shown
                    // meanwhile were not the file's, but nothing is lost.
                    self.assert_kept(&pending, &disk_before, &self.disk_lines());
                } else {
                    assert_eq!(self.disk_lines(), before, "{}", self.at());
                }
                self.saved();
            }
            Err(StoreError::Changed { .. }) => {
                assert!(self.outside_wrote, "{}: refused for nothing", self.at());
                assert_eq!(
                    self.disk_lines(),
                    disk_before,
                    "{}: wrote anyway",
                    self.at()
                );
                self.reload_step(&pending, &disk_before);
            }
            Err(other) => panic!("{}: {other}", self.at()),
        }
        for line in self.disk_lines() {
            assert!(
                serde_json::from_str::<Value>(&line).is_ok(),
                "{}: corrupt line {line:?}",
                self.at()
            );
        }
    }

    /// Every text the user wrote and had not saved is in `after`, and so is
    /// every line of `disk` the user did not edit or remove.
    fn assert_kept(&self, pending: &[String], disk: &[String], after: &[String]) {
        let now = count(after);
        for (text, n) in count(pending) {
            assert!(
                now.get(text).copied().unwrap_or(0) >= n,
                "{}: lost {text}",
                self.at()
            );
        }
        let touched = count(&self.touched);
        for (text, n) in count(disk) {
            let allowed = touched.get(text).copied().unwrap_or(0);
            let kept = now.get(text).copied().unwrap_or(0);
            assert!(kept + allowed >= n, "{}: dropped {text}", self.at());
        }
    }

    fn reload_step(&mut self, pending: &[String], disk_before: &[String]) {
        // The removals pending, as their records were first read.
        let in_doc: std::collections::HashSet<u32> =
            (0..self.store.len()).map(|i| self.store.row(i)).collect();
        let removals: Vec<String> = (0..self.store.index.len() as u32)
            .filter(|r| !in_doc.contains(r))
            .map(|r| match self.store.originals.get(&r) {
                Some(original) => String::from_utf8_lossy(original).into_owned(),
                None => "never read".into(),
            })
            .collect();
        let reloaded = self.store.reload().unwrap();
        self.steps.push(format!("reload {:?}", reloaded.unmatched));
        let after = document(&reloaded.store);
        self.assert_kept(pending, disk_before, &after);
        // A removal that could not be applied is reported.
        let on_disk = count(disk_before);
        let missing = removals
            .iter()
            .filter(|t| !on_disk.contains_key(t.as_str()))
            .count();
        let reported = reloaded
            .unmatched
            .iter()
            .filter(|u| u.kind == UnmatchedKind::Removal)
            .count();
        assert!(reported >= missing, "{}: unreported removals", self.at());
        for u in &reloaded.unmatched {
            if u.kind == UnmatchedKind::Edit {
                let at = u.kept_at.expect("an unmatched edit is kept");
                assert!(pending.contains(&after[at]), "{}: {u:?}", self.at());
            }
        }
        // What the changes re-applied touched stays touched until saved.
        self.store = reloaded.store;
        self.synced = fs::read(&self.path).unwrap();
        self.outside_wrote = false;
    }
}

#[test]
fn no_line_is_lost_without_the_user_being_told() {
    for seed in 0..2000 {
        // Saves fsync; in memory that costs nothing, on a disk most of the
        // test's time.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("data.jsonl");
        let initial: Vec<String> = (0..4).map(|n| record('i', n)).collect();
        fs::write(&path, initial.join("\n") + "\n").unwrap();
        let mut world = World {
            seed,
            steps: Vec::new(),
            store: Store::open(&path).unwrap(),
            path,
            rng: SplitMix64::new(seed),
            next: 100,
            synced: fs::read(dir.path().join("data.jsonl")).unwrap(),
            outside_wrote: false,
            touched: Vec::new(),
        };
        for _ in 0..40 {
            match world.rng.below(10) {
                0..=4 => world.app_step(),
                5..=7 => world.outside_step(),
                _ => world.save_step(),
            }
        }
        world.save_step();
    }
}
