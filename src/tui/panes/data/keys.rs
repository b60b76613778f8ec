//! Keys: the editor and the prompt take every key while open; otherwise
//! pane-wide commands, then movement in the focused part.

use super::bounds::{self, EDIT_BYTES};
use super::code_view::COLUMN_STEP;
use super::editor::{Editor, Outcome, Target};
use super::filter::{next_format, next_severity};
use super::history::Op;
use super::sample_view::{Item, field_layout, field_lines_total, wrapped_len};
use super::state::{DataPane, Focus, Prompt, PromptKind};
use crate::data::Format;
use crate::data::validate::file_field;
use crate::tui::action::{Effect, Notice};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};

impl DataPane {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if self.editor.is_some() {
            return self.editor_key(key);
        }
        if self.prompt.is_some() {
            return self.prompt_key(key);
        }
        if self.watch.ask.is_some() {
            return self.ask_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Tab => self.focus = self.focus.next(false),
            KeyCode::BackTab => self.focus = self.focus.next(true),
            KeyCode::Char('/') => self.open_prompt(PromptKind::Filter),
            KeyCode::Char(':') | KeyCode::Char('g') => self.open_prompt(PromptKind::Jump),
            KeyCode::Char('o') => self.open_prompt(PromptKind::Open),
            KeyCode::Char('f') => {
                self.filter.criteria.format =
                    next_format(self.filter.criteria.format, &self.formats);
                return self.start_filter();
            }
            KeyCode::Char('s') if ctrl => return self.save_key(),
            KeyCode::Char('s') => {
                if !self.findings.ready {
                    return vec![Notice::info(
                        "validation is still running; try again in a moment",
                    )];
                }
                self.filter.criteria.severity = next_severity(self.filter.criteria.severity);
                return self.start_filter();
            }
            KeyCode::Esc if !self.filter.criteria.is_empty() => {
                self.filter.criteria = Default::default();
                return self.start_filter();
            }
            KeyCode::Char('e') => return self.open_editor(false),
            KeyCode::Char('E') => return self.open_editor(true),
            KeyCode::Char('a') => return self.add_sample(),
            KeyCode::Char('d') => return self.duplicate_sample(),
            KeyCode::Char('x') | KeyCode::Delete => return self.delete_sample(),
            KeyCode::Char('u') => return self.undo_last(),
            KeyCode::Char('w') => return self.save_key(),
            KeyCode::Char('t') => {
                self.tokens.on = !self.tokens.on;
                self.tokens.scroll = 0;
                if self.tokens.on && !self.can_tokenise() {
                    return vec![Notice::info(
                        "the token view fills in once the model has loaded",
                    )];
                }
                return if self.tokens.on {
                    self.token_jobs()
                        .into_iter()
                        .filter(|e| matches!(e, Effect::Data(super::Job::Tokens { .. })))
                        .collect()
                } else {
                    Vec::new()
                };
            }
            KeyCode::Char('+') | KeyCode::Char('=') => self.tokens.adjust(true),
            KeyCode::Char('-') => self.tokens.adjust(false),
            _ => return self.navigate(key),
        }
        Vec::new()
    }

    fn navigate(&mut self, key: KeyEvent) -> Vec<Effect> {
        let step: isize = match key.code {
            KeyCode::Down | KeyCode::Char('j') => 1,
            KeyCode::Up | KeyCode::Char('k') => -1,
            KeyCode::PageDown => self.page(),
            KeyCode::PageUp => -self.page(),
            KeyCode::End | KeyCode::Char('G') => isize::MAX / 2,
            KeyCode::Home => -(isize::MAX / 2),
            KeyCode::Enter => return self.enter(),
            KeyCode::Left | KeyCode::Char('h') if self.focus == Focus::Sample => {
                return self.scroll_code_columns(-1);
            }
            KeyCode::Right | KeyCode::Char('l') if self.focus == Focus::Sample => {
                return self.scroll_code_columns(1);
            }
            _ => return Vec::new(),
        };
        let paging = matches!(key.code, KeyCode::PageDown | KeyCode::PageUp);
        self.move_in_focus(step, paging)
    }

    /// Rows in a page of the focused part.
    fn page(&self) -> isize {
        let areas = self.areas.get();
        let height = match self.focus {
            Focus::List => areas.list.height,
            Focus::Sample => areas.content.height,
            Focus::Findings => areas.findings.height,
        };
        (height.max(2) - 1) as isize
    }

    /// Moves the cursor of the focused part (`paging` in a sample scrolls
    /// its content rather than moving between fields).
    pub(super) fn move_in_focus(&mut self, step: isize, paging: bool) -> Vec<Effect> {
        match self.focus {
            Focus::List => {
                let len = self.visible_len();
                self.list.move_by(step, len);
                self.list.follow(self.list_height());
            }
            Focus::Findings => {
                let len = self.findings.len();
                self.findings_cursor.move_by(step, len);
                self.findings_cursor
                    .follow(self.areas.get().findings.height as usize);
            }
            Focus::Sample if paging || self.tokens.on => self.scroll_content(step),
            Focus::Sample => self.move_item(step),
        }
        Vec::new()
    }

    /// Scrolls the code view sideways, `direction` steps of `COLUMN_STEP`.
    pub(super) fn scroll_code_columns(&mut self, direction: isize) -> Vec<Effect> {
        let width = self.areas.get().content.width as usize;
        if self.tokens.on {
            return Vec::new();
        }
        if let Some(sel) = self.selected.as_mut().filter(|s| s.file.is_some()) {
            sel.code
                .scroll_columns(direction * COLUMN_STEP as isize, width);
        }
        Vec::new()
    }

    pub(super) fn scroll_content(&mut self, step: isize) {
        let max = self
            .content_lines()
            .saturating_sub(1)
            .min(u16::MAX as usize);
        let scroll = if self.tokens.on {
            &mut self.tokens.scroll
        } else if let Some(sel) = &mut self.selected {
            &mut sel.scroll
        } else {
            return;
        };
        *scroll = (*scroll as isize + step).clamp(0, max as isize) as u16;
    }

    /// How far the content can scroll: about its length in lines (wrapped
    /// token text is counted generously).
    fn content_lines(&self) -> usize {
        let width = (self.areas.get().content.width as usize).max(1);
        let Some(sel) = &self.selected else {
            return 0;
        };
        if self.tokens.on {
            return match self.tokens.for_seq(self.seq) {
                Some(Ok(t)) => {
                    let chars: usize = t.pieces.iter().map(|p| p.chars().count() + 2).sum();
                    let breaks: usize = t.pieces.iter().map(|p| p.matches('\n').count()).sum();
                    chars / width + breaks + 3
                }
                _ => 0,
            };
        }
        if sel.syntax.is_some() {
            wrapped_len(&sel.raw, width) + 3
        } else if sel.is_multifile() {
            sel.code.lines
        } else {
            field_lines_total(&sel.fields, width)
        }
    }

    /// Moves between the fields and files of the sample, scrolling the
    /// field into view.
    fn move_item(&mut self, step: isize) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        let file_changed = sel.move_item(step);
        self.follow_field();
        if file_changed {
            self.show_file();
        }
    }

    /// Chooses a field or file of the sample (a click in the tree, a jump
    /// to a finding).
    pub(super) fn choose_item(&mut self, item: Item) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        let file_changed = sel.select_item(item);
        self.follow_field();
        if file_changed {
            self.show_file();
        }
    }

    /// Scrolls the field under the sample's cursor into view: to the top of
    /// the content, or within the fields above a multi-file sample's files
    /// (nothing before the first drawing: the sizes are not known yet).
    fn follow_field(&mut self) {
        let areas = self.areas.get();
        let Some(sel) = &mut self.selected else {
            return;
        };
        let Some(Item::Field(i)) = sel.current() else {
            return;
        };
        if sel.is_multifile() {
            sel.follow_field(areas.fields.width as usize, areas.fields.height as usize);
        } else if sel.syntax.is_none() && areas.content.width > 0 {
            let starts = field_layout(&sel.fields, areas.content.width as usize).1;
            sel.scroll = starts.get(i).copied().unwrap_or(0) as u16;
        }
    }

    fn enter(&mut self) -> Vec<Effect> {
        match self.focus {
            Focus::List => {
                self.focus = Focus::Sample;
                Vec::new()
            }
            Focus::Sample => self.open_editor(false),
            Focus::Findings => self.jump_to_finding(),
        }
    }

    pub(super) fn jump_to_finding(&mut self) -> Vec<Effect> {
        let Some(item) = self.findings.items().get(self.findings_cursor.pos) else {
            return Vec::new();
        };
        let record = item.record;
        let field = item.finding.field.clone();
        let mut effects = self.select_record(record);
        effects.extend(self.sync_selection());
        let Some(sel) = &self.selected else {
            return effects;
        };
        let file = sel.files.iter().position(|f| file_field(&f.path) == field);
        let found = sel.fields.iter().position(|f| {
            !field.is_empty() && (field.starts_with(&f.label) || f.label.starts_with(&field))
        });
        if let Some(i) = file {
            self.choose_item(Item::File(i));
            self.scroll_to_error();
        } else if let Some(i) = found {
            self.choose_item(Item::Field(i));
        }
        effects
    }

    fn open_prompt(&mut self, kind: PromptKind) {
        let text = match kind {
            PromptKind::Filter => self.filter.criteria.text.clone(),
            PromptKind::Jump => String::new(),
            PromptKind::Open | PromptKind::SaveAs => {
                self.store.path().to_string_lossy().into_owned()
            }
        };
        self.prompt = Some(Prompt::new(kind, &text));
    }

    fn prompt_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(prompt) = &mut self.prompt else {
            return Vec::new();
        };
        if key.code == KeyCode::Tab && prompt.takes_path() {
            prompt.completion.tab(&mut prompt.line);
            return Vec::new();
        }
        prompt.completion.reset();
        match key.code {
            KeyCode::Esc => self.prompt = None,
            // A line number is digits only.
            KeyCode::Char(c)
                if prompt.kind == PromptKind::Jump
                    && !c.is_ascii_digit()
                    && !key.modifiers.contains(KeyModifiers::CONTROL) => {}
            KeyCode::Enter => {
                let prompt = self.prompt.take().expect("prompt is open");
                let text = prompt.line.into_text();
                return match prompt.kind {
                    PromptKind::Filter => {
                        self.filter.criteria.text = text;
                        self.focus = Focus::List;
                        self.start_filter()
                    }
                    PromptKind::Open => vec![Effect::OpenDataset(text.trim().into())],
                    PromptKind::SaveAs => self.save_as(text.trim()),
                    PromptKind::Jump => match text.parse::<usize>() {
                        Ok(line) => {
                            self.focus = Focus::List;
                            self.jump_to_line(line)
                        }
                        Err(_) => Vec::new(),
                    },
                };
            }
            _ => {
                prompt.line.key(key);
            }
        }
        Vec::new()
    }

    /// `e`: the field or file under the sample's cursor (the whole record
    /// when it has none or does not parse); `whole`: always the record.
    fn open_editor(&mut self, whole: bool) -> Vec<Effect> {
        let Some(sel) = &self.selected else {
            return vec![Notice::info("no sample to edit")];
        };
        let whole = whole || sel.value.is_none();
        let len = match sel.edit_len() {
            Some(len) if !whole => len,
            _ => sel.bytes,
        };
        if len > EDIT_BYTES {
            return vec![Notice::error(format!(
                "too large to edit here ({}; the editor takes up to {}): edit the file in a \
                 text editor",
                bounds::size(len),
                bounds::size(EDIT_BYTES)
            ))];
        }
        let target = if whole { None } else { sel.edit_target() };
        let editor = match target {
            Some((target, label, text)) => Editor::new(sel.record, target, label, text),
            None => {
                let text = match &sel.value {
                    Some(value) => serde_json::to_string_pretty(value).unwrap_or_default(),
                    // The view holds only the head of a long broken record.
                    None => match self.store.raw(sel.record) {
                        Ok(raw) => String::from_utf8_lossy(&raw).into_owned(),
                        Err(e) => return vec![Notice::error(format!("cannot read: {e}"))],
                    },
                };
                let label = format!("sample {}", sel.record + 1);
                Editor::new(sel.record, Target::Record, label, text)
            }
        };
        self.editor = Some(editor);
        Vec::new()
    }

    fn editor_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(editor) = &mut self.editor else {
            return Vec::new();
        };
        match editor.key(key) {
            Outcome::Continue => Vec::new(),
            Outcome::Discard => {
                self.editor = None;
                Vec::new()
            }
            Outcome::Apply => match self.edited_record() {
                Ok(text) => {
                    let at = self.editor.take().map_or(0, |e| e.record);
                    self.perform(Op::Set { at, text })
                }
                Err(message) => {
                    if let Some(editor) = &mut self.editor {
                        editor.error = Some(message);
                    }
                    Vec::new()
                }
            },
        }
    }

    /// The record's new text from the editor, in the file's style.
    fn edited_record(&self) -> Result<String, String> {
        let editor = self.editor.as_ref().ok_or("no editor")?;
        let text = editor.text();
        let value = match &editor.target {
            Target::Record => serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("not valid JSON ({e}); fix it, or Ctrl+g to discard"))?,
            Target::Field { pointer } | Target::List { pointer } => {
                let mut value = self
                    .store
                    .value(editor.record)
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let slot = value
                    .pointer_mut(pointer)
                    .ok_or_else(|| format!("the field {} is gone", editor.label))?;
                *slot = editor.target.value(text);
                value
            }
        };
        Ok(self.store.format_record(&value))
    }

    fn add_sample(&mut self) -> Vec<Effect> {
        let at = self.current_record().map_or(self.store.len(), |r| r + 1);
        let text = self.store.format_record(&template(self.file_format));
        let mut effects = self.perform(Op::Insert { at, text });
        effects.extend(self.sync_selection());
        self.focus = Focus::Sample;
        effects.extend(self.open_editor(true));
        effects
    }

    fn duplicate_sample(&mut self) -> Vec<Effect> {
        let Some(record) = self.current_record() else {
            return Vec::new();
        };
        match self.store.raw(record) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut effects = self.perform(Op::Insert {
                    at: record + 1,
                    text,
                });
                effects.push(Notice::info("duplicated (u undoes)"));
                effects
            }
            Err(e) => vec![Notice::error(format!("cannot read the sample: {e}"))],
        }
    }

    fn delete_sample(&mut self) -> Vec<Effect> {
        let Some(at) = self.current_record() else {
            return Vec::new();
        };
        let mut effects = self.perform(Op::Remove { at });
        effects.push(Notice::info("deleted (u undoes)"));
        effects
    }
}

/// An empty record of `format`, for `a`.
fn template(format: Option<Format>) -> Value {
    match format {
        Some(Format::Text) => json!({"text": ""}),
        Some(Format::Completion) => json!({"prompt": "", "completion": ""}),
        Some(Format::Alpaca) => json!({"instruction": "", "input": "", "output": ""}),
        Some(Format::ShareGpt) => json!({"conversations": [
            {"from": "human", "value": ""}, {"from": "gpt", "value": ""}]}),
        Some(Format::MultiFile) => json!({"prompt": "", "output": {"files": {"README.md": ""}}}),
        Some(Format::Preference) => json!({"prompt": "", "chosen": "", "rejected": ""}),
        Some(Format::Chat) | None => json!({"messages": [
            {"role": "user", "content": ""}, {"role": "assistant", "content": ""}]}),
    }
}
