//! The pane's update rules (keys, mouse and messages in, effects out), the
//! summary figures, and snapshots of how it looks. The fixture is written
//! with the `eval::results` types, so it follows their schema.

use super::*;
use crate::eval::code::exec::TestRun;
use crate::eval::code::{CodeCheck, FileError};
use crate::eval::metrics::{f1, rouge};
use crate::eval::results::{RESULTS_FILE, SampleResult, SideResult, write_results};
use crate::tui::action::Effect;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Modifier, Style};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn side(answer: &str, reference: &str, loss: f64, tokens: usize) -> SideResult {
    let rouge_l = rouge::rouge_l(answer, reference).fmeasure;
    SideResult {
        answer: answer.into(),
        stop: "end_of_turn".into(),
        new_tokens: answer.split_whitespace().count(),
        seconds: 0.4,
        exact_match: f1::exact_match(answer, reference),
        f1: f1::token_f1(answer, reference),
        rouge_l,
        score: rouge_l,
        loss: Some(loss),
        tokens,
        predicted_label: None,
        label_correct: None,
        code: None,
    }
}

fn text_sample(
    index: usize,
    prompt: &str,
    reference: &str,
    base: &str,
    adapter: &str,
) -> SampleResult {
    let base = side(base, reference, 2.0, 10);
    let adapter = side(adapter, reference, 1.0, 10);
    SampleResult {
        index,
        line: index + 1,
        prompt: prompt.into(),
        reference: reference.into(),
        label: None,
        primary: "rouge_l".into(),
        tokens: 10,
        loss: adapter.loss,
        score_delta: Some(adapter.score - base.score),
        base,
        adapter: Some(adapter),
    }
}

pub(super) fn code_sample(index: usize) -> SampleResult {
    let reference = r#"{"files": {"app/main.py": "from fastapi import FastAPI\napp = FastAPI()\n", "tests/test_main.py": "def test_ok():\n    assert True\n"}}"#;
    let mut base = side("I cannot write that project.", reference, 3.0, 30);
    base.code = Some(CodeCheck {
        parsed: false,
        parse_error: Some("not JSON".into()),
        expected_files: 2,
        missing_files: vec!["app/main.py".into(), "tests/test_main.py".into()],
        ..CodeCheck::default()
    });
    base.score = 0.0;
    let answer = r#"{"files": {"app/main.py": "from fastapi import FastAPI\nimport magicdb\napp = FastAPI(\n"}}"#;
    let mut adapter = side(answer, reference, 1.5, 30);
    adapter.stop = "max_tokens".into();
    adapter.code = Some(CodeCheck {
        parsed: true,
        files: 1,
        checked_files: 1,
        syntax_errors: vec![FileError {
            path: "app/main.py".into(),
            language: "python".into(),
            line: 3,
            column: 15,
            message: "unexpected EOF".into(),
        }],
        expected_files: 2,
        missing_files: vec!["tests/test_main.py".into()],
        coverage: 0.5,
        external_imports: vec!["fastapi".into(), "magicdb".into()],
        invented_packages: vec!["magicdb".into()],
        tests: Some(TestRun {
            passed: 1,
            failed: 1,
            ..TestRun::default()
        }),
        score: 0.375,
        ..CodeCheck::default()
    });
    adapter.score = 0.375;
    SampleResult {
        index,
        line: index + 1,
        // As `eval` stores a multi-file request: rendered with its headings.
        prompt: crate::data::read::render_request(
            "Create a FastAPI todo service with tests",
            serde_json::json!({"domain": "todo"}).as_object(),
        ),
        reference: reference.into(),
        label: None,
        primary: "code_score".into(),
        tokens: 30,
        loss: adapter.loss,
        score_delta: Some(adapter.score - base.score),
        base,
        adapter: Some(adapter),
    }
}

fn fixture() -> Vec<SampleResult> {
    vec![
        text_sample(
            0,
            "How do I add a health check endpoint to a FastAPI app?",
            "Add a route: @app.get('/health') def health(): return {'status': 'ok'} and point the load balancer at it.",
            "You can add a route that returns a status.",
            "Add a route: @app.get('/health') def health(): return {'status': 'ok'}",
        ),
        text_sample(
            1,
            "Summarise: the meeting moved to Friday because the room was booked for Thursday.",
            "The meeting moved to Friday since the room was taken on Thursday.",
            "The meeting moved to Friday because the room was booked on Thursday.",
            "Meeting is now on Monday, the team decided.",
        ),
        text_sample(
            2,
            "Translate 'good morning' to French.",
            "Bonjour.",
            "Bonjour.",
            "Bonjour.",
        ),
        code_sample(3),
    ]
}

/// Writes `samples` as `<runs>/<run>/eval-results.jsonl`, `age` seconds old.
fn write_run(runs: &Path, run: &str, samples: &[SampleResult], age: u64) -> PathBuf {
    let dir = runs.join(run);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(RESULTS_FILE);
    write_results(&path, samples).unwrap();
    let when = SystemTime::now() - Duration::from_secs(age);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
    path
}

/// Carries out the pane's load jobs the way the worker does, in line.
fn run_jobs(pane: &mut EvalPane, effects: Vec<Effect>) -> Vec<Effect> {
    let mut notices = Vec::new();
    for effect in effects {
        match effect {
            Effect::Eval(Job::Load { id, path }) => {
                let result = worker::load(&path);
                notices.extend(pane.message(Msg::Loaded { id, path, result }));
            }
            other => notices.push(other),
        }
    }
    notices
}

fn notices(effects: &[Effect]) -> Vec<(String, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some((n.text.clone(), n.is_error)),
            _ => None,
        })
        .collect()
}

/// A runs folder with two runs (tiny-2 newer) and the pane on it, tiny-2 open.
pub(super) fn loaded_pane() -> (tempfile::TempDir, EvalPane) {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    write_run(&runs, "tiny-1", &fixture()[..2], 600);
    write_run(&runs, "tiny-2", &fixture(), 60);
    std::fs::create_dir_all(runs.join("no-results")).unwrap();
    let mut pane = EvalPane::new(runs);
    let effects = pane.key(key(KeyCode::Enter));
    let out = run_jobs(&mut pane, effects);
    assert!(!notices(&out)[0].1, "{out:?}");
    (dir, pane)
}

fn selected_index(pane: &EvalPane) -> usize {
    let c = pane.compared.as_ref().unwrap();
    pane.loaded.as_ref().unwrap().samples[c.sample].index
}

pub(super) fn draw(pane: &EvalPane) -> Terminal<TestBackend> {
    crate::tui::panes::testing::draw_pane(pane, 120, 32)
}

#[test]
fn scan_lists_results_newest_first() {
    let (_dir, pane) = loaded_pane();
    let labels: Vec<&str> = pane.scan.files.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels, ["tiny-2", "tiny-1"]);
}

#[test]
fn enter_loads_the_newest_and_sorts_worst_first() {
    let (_dir, pane) = loaded_pane();
    let loaded = pane.loaded.as_ref().unwrap();
    assert!(loaded.path.ends_with("tiny-2/eval-results.jsonl"));
    let order: Vec<usize> = pane.rows.iter().map(|&i| loaded.samples[i].index).collect();
    assert_eq!(order, [1, 2, 3, 0]);
    assert_eq!(pane.focus, Focus::Samples);
    assert_eq!(selected_index(&pane), 1);
}

#[test]
fn order_toggles_and_keeps_the_selected_sample() {
    let (_dir, mut pane) = loaded_pane();
    pane.key(key(KeyCode::Char('j')));
    assert_eq!(selected_index(&pane), 2);
    pane.key(key(KeyCode::Char('o')));
    assert_eq!(pane.order, Order::BestFirst);
    let loaded = pane.loaded.as_ref().unwrap();
    let order: Vec<usize> = pane.rows.iter().map(|&i| loaded.samples[i].index).collect();
    assert_eq!(order, [0, 3, 2, 1]);
    assert_eq!(selected_index(&pane), 2);
    pane.key(key(KeyCode::Char('g')));
    assert_eq!(selected_index(&pane), 0);
    pane.key(key(KeyCode::Char('G')));
    assert_eq!(selected_index(&pane), 1);
}

#[test]
fn moving_diffs_the_selected_sample() {
    let (_dir, mut pane) = loaded_pane();
    let c = pane.compared.as_ref().unwrap();
    // Sample 1: the adapter's answer shares little with the reference.
    let (shared, all) = c.adapter_diff.as_ref().unwrap().answer_shared();
    assert!(shared < all / 2, "{shared}/{all}");
    assert_eq!(c.base_diff.answer_shared().1, 12);
    pane.key(key(KeyCode::Down));
    pane.key(key(KeyCode::Down));
    let c = pane.compared.as_ref().unwrap();
    // The multi-file answers are shown as their files.
    assert!(
        c.reference.starts_with("── app/main.py ──\nfrom fastapi"),
        "{}",
        c.reference
    );
}

#[test]
fn tab_cycles_focus_and_d_switches_the_reference_diff() {
    let (_dir, mut pane) = loaded_pane();
    pane.key(key(KeyCode::Tab));
    assert_eq!(pane.focus, Focus::Columns);
    pane.key(key(KeyCode::Tab));
    assert_eq!(pane.focus, Focus::Results);
    pane.key(key(KeyCode::BackTab));
    assert_eq!(pane.focus, Focus::Columns);
    assert_eq!(pane.against, Against::Adapter);
    pane.key(key(KeyCode::Char('d')));
    assert_eq!(pane.against, Against::Base);
    let c = pane.compared.as_ref().unwrap();
    assert_eq!(c.reference_diff(pane.against).1, Against::Base);
}

#[test]
fn columns_scroll_within_the_longest_text() {
    let (_dir, mut pane) = loaded_pane();
    // The code sample: its reference is several lines long.
    pane.key(key(KeyCode::Char('G')));
    pane.key(key(KeyCode::Char('k')));
    assert_eq!(selected_index(&pane), 3);
    draw_small(&pane);
    let drawn = pane.drawn.get();
    assert!(drawn.text_lines > drawn.text_height, "{drawn:?}");
    pane.key(key(KeyCode::PageDown));
    let max = drawn.text_lines - drawn.text_height;
    assert_eq!(pane.scroll, (drawn.text_height - 1).clamp(1, max));
    for _ in 0..20 {
        pane.key(key(KeyCode::PageDown));
    }
    assert_eq!(pane.scroll, max);
    for _ in 0..20 {
        pane.key(key(KeyCode::PageUp));
    }
    assert_eq!(pane.scroll, 0);
    // Another sample starts at its top.
    pane.key(key(KeyCode::PageDown));
    pane.key(key(KeyCode::Char('k')));
    assert_eq!(pane.scroll, 0);
}

fn draw_small(pane: &EvalPane) {
    let mut terminal = Terminal::new(TestBackend::new(120, 20)).unwrap();
    let theme = &Theme::builtin()[0];
    terminal
        .draw(|frame| pane.render(frame, frame.area(), theme))
        .unwrap();
}

#[test]
fn clicks_select_and_the_wheel_moves() {
    let (_dir, mut pane) = loaded_pane();
    draw(&pane);
    let drawn = pane.drawn.get();
    let click = crate::tui::panes::testing::left_click;
    // The third row of the samples list.
    pane.mouse(
        click(drawn.samples.x + 3, drawn.samples.y + 2),
        Rect::default(),
    );
    assert_eq!(selected_index(&pane), 3);
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollUp,
        ..click(drawn.samples.x + 3, drawn.samples.y)
    };
    pane.mouse(wheel, Rect::default());
    assert_eq!(selected_index(&pane), 2);
    // A click on the older results file selects it; a second opens it.
    let row = (drawn.results.x + 2, drawn.results.y + 1);
    assert!(pane.mouse(click(row.0, row.1), Rect::default()).is_empty());
    assert_eq!(pane.focus, Focus::Results);
    let effects = pane.mouse(click(row.0, row.1), Rect::default());
    run_jobs(&mut pane, effects);
    let loaded = pane.loaded.as_ref().unwrap();
    assert!(loaded.path.ends_with("tiny-1/eval-results.jsonl"));
    assert_eq!(loaded.samples.len(), 2);
}

#[test]
fn a_bad_line_becomes_a_notice_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let path = write_run(&runs, "broken", &fixture()[..1], 0);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"index\": 1, \"oops\n");
    std::fs::write(&path, text).unwrap();
    let mut pane = EvalPane::new(runs);
    let effects = pane.key(key(KeyCode::Enter));
    let out = notices(&run_jobs(&mut pane, effects));
    assert_eq!(out.len(), 1);
    assert!(out[0].1, "{out:?}");
    assert!(
        out[0].0.contains(&format!("{}:2:", path.display())),
        "{}",
        out[0].0
    );
    assert!(pane.loaded.is_none());
    assert!(pane.error.is_some());
    // An empty file is an error too, not an empty view.
    std::fs::write(&path, "\n").unwrap();
    let effects = pane.key(key(KeyCode::Char('r')));
    assert!(effects.is_empty(), "nothing was loaded, so nothing reloads");
    let effects = pane.key(key(KeyCode::Enter));
    let out = notices(&run_jobs(&mut pane, effects));
    assert!(out[0].1 && out[0].0.contains("no results"), "{out:?}");
}

#[test]
fn stale_loads_are_dropped() {
    let (_dir, mut pane) = loaded_pane();
    let path = pane.loaded.as_ref().unwrap().path.clone();
    let old = pane.key(key(KeyCode::Char('r')));
    let new = pane.key(key(KeyCode::Char('r')));
    let Effect::Eval(Job::Load { id, .. }) = &old[0] else {
        panic!("{old:?}");
    };
    let out = pane.message(Msg::Loaded {
        id: *id,
        path: path.clone(),
        result: Err("old".into()),
    });
    assert!(out.is_empty());
    assert!(pane.error.is_none());
    run_jobs(&mut pane, new);
    assert!(pane.loading.is_none());
}

#[test]
fn open_message_adds_a_file_outside_the_runs() {
    let (dir, mut pane) = loaded_pane();
    let elsewhere = write_run(dir.path(), "out", &fixture()[2..3], 0);
    let effects = pane.message(Msg::Open(elsewhere.clone()));
    run_jobs(&mut pane, effects);
    assert_eq!(pane.scan.files.len(), 3);
    assert_eq!(pane.scan.files[pane.files.selected].path, elsewhere);
    assert_eq!(pane.loaded.as_ref().unwrap().path, elsewhere);
}

#[test]
fn tick_rescans_every_two_seconds() {
    let (dir, mut pane) = loaded_pane();
    write_run(&dir.path().join("runs"), "tiny-3", &fixture(), 0);
    assert!(!pane.tick(), "too soon");
    pane.last_scan -= RESCAN;
    assert!(pane.tick());
    assert_eq!(pane.scan.files[0].label, "tiny-3");
    // The selection stays on the file it was on.
    assert_eq!(pane.scan.files[pane.files.selected].label, "tiny-2");
    pane.last_scan -= RESCAN;
    assert!(!pane.tick(), "nothing changed");
}

#[test]
fn summary_matches_the_samples() {
    let (_dir, pane) = loaded_pane();
    let loaded = pane.loaded.as_ref().unwrap();
    let adapter = loaded.adapter.as_ref().unwrap();
    // Losses are token-weighted: (2.0*10*3 + 3.0*30) / 60 for the base.
    assert!(
        (loaded.base.loss - 2.5).abs() < 1e-9,
        "{}",
        loaded.base.loss
    );
    assert!((adapter.loss - 1.25).abs() < 1e-9);
    assert_eq!(loaded.base.samples, 4);
    assert!(loaded.base.code.is_some());
    assert!(adapter.bleu.score > loaded.base.bleu.score * 0.0);
    assert_eq!(loaded.tally(), (2, 1, 1));
}

#[test]
fn results_without_an_adapter_sort_by_the_base_score() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut samples = fixture();
    for s in &mut samples {
        s.adapter = None;
        s.score_delta = None;
    }
    write_run(&runs, "base-only", &samples, 0);
    let mut pane = EvalPane::new(runs);
    let effects = pane.key(key(KeyCode::Enter));
    run_jobs(&mut pane, effects);
    let loaded = pane.loaded.as_ref().unwrap();
    assert!(loaded.adapter.is_none());
    let first = &loaded.samples[pane.rows[0]];
    assert_eq!(first.index, 3, "the code sample scores 0");
    let c = pane.compared.as_ref().unwrap();
    assert_eq!(c.reference_diff(Against::Adapter).1, Against::Base);
    let text = format!("{:?}", draw(&pane).backend());
    assert!(text.contains("ran without --adapter"), "{text}");
}

#[test]
fn bindings_avoid_the_global_keys() {
    let pane = EvalPane::new(PathBuf::from("no-such-runs"));
    for b in pane.bindings() {
        for k in b.keys.split_whitespace() {
            assert!(!["1", "2", "3", "4", "?", "q"].contains(&k), "{k}");
        }
    }
    for k in ['1', '2', '3', '4', '?', 'q'] {
        let mut pane = EvalPane::new(PathBuf::from("no-such-runs"));
        assert!(pane.key(key(KeyCode::Char(k))).is_empty());
    }
}

/// The style of the first cell of `word` inside the columns `xs`.
fn style_of(terminal: &Terminal<TestBackend>, word: &str, xs: std::ops::Range<u16>) -> Style {
    let buffer = terminal.backend().buffer();
    let chars: Vec<String> = word.chars().map(String::from).collect();
    for y in 0..buffer.area.height {
        for x in xs.clone() {
            let hit = chars.iter().enumerate().all(|(i, ch)| {
                x + (i as u16) < buffer.area.width && buffer[(x + i as u16, y)].symbol() == ch
            });
            if hit {
                return buffer[(x, y)].style();
            }
        }
    }
    panic!("{word} not drawn");
}

#[test]
fn words_outside_the_reference_are_marked() {
    let (_dir, pane) = loaded_pane();
    let theme = &Theme::builtin()[0];
    let terminal = draw(&pane);
    let cols = pane.drawn.get().columns;
    let third = cols.width / 3;
    let (base, adapter, reference) = (
        cols.x..cols.x + third,
        cols.x + third..cols.x + 2 * third,
        cols.x + 2 * third..cols.right(),
    );
    let extra = style_of(&terminal, "because", base.clone());
    assert_eq!(extra.fg, Some(theme.error));
    assert!(extra.add_modifier.contains(Modifier::UNDERLINED));
    let shared = style_of(&terminal, "Friday", base);
    assert_eq!(shared.fg, Some(theme.text));
    assert!(!shared.add_modifier.contains(Modifier::UNDERLINED));
    let extra = style_of(&terminal, "Monday", adapter);
    assert!(extra.add_modifier.contains(Modifier::UNDERLINED));
    // The reference against the adapter: "Friday" was missed.
    let missed = style_of(&terminal, "Friday", reference.clone());
    assert_eq!(missed.fg, Some(theme.dim));
    assert!(missed.add_modifier.contains(Modifier::ITALIC));
    let mut pane = pane;
    pane.key(key(KeyCode::Char('d')));
    let terminal = draw(&pane);
    let found = style_of(&terminal, "Friday", reference);
    assert_eq!(found.fg, Some(theme.text), "the base answer has it");
}

#[test]
fn renders_at_any_size() {
    let (_dir, mut pane) = loaded_pane();
    let theme = &Theme::builtin()[0];
    for focus_code in [KeyCode::Char('G'), KeyCode::Char('k')] {
        pane.key(key(focus_code));
        for (w, h) in [(1, 1), (10, 4), (40, 12), (80, 8), (200, 60)] {
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            terminal
                .draw(|frame| pane.render(frame, frame.area(), theme))
                .unwrap();
        }
    }
    let empty = EvalPane::new(PathBuf::from("no-such-runs"));
    let mut terminal = Terminal::new(TestBackend::new(5, 2)).unwrap();
    terminal
        .draw(|frame| empty.render(frame, frame.area(), theme))
        .unwrap();
}

#[test]
fn snapshot_loaded_results_worst_first() {
    let (_dir, pane) = loaded_pane();
    insta::assert_snapshot!("eval_worst_first", draw(&pane).backend());
}

#[test]
fn snapshot_code_sample() {
    let (_dir, mut pane) = loaded_pane();
    pane.key(key(KeyCode::Char('o')));
    pane.key(key(KeyCode::Char('g')));
    pane.key(key(KeyCode::Char('j')));
    assert_eq!(selected_index(&pane), 3);
    insta::assert_snapshot!("eval_code_sample", draw(&pane).backend());
}

#[test]
fn snapshot_how_to_make_results() {
    let mut pane = EvalPane::new(PathBuf::from("runs-none"));
    pane.model_ready(&ModelInfo {
        name: "Qwen/Qwen2.5-0.5B-Instruct".into(),
        adapter: None,
        precision: "f32 · cpu".into(),
        generation: 1,
    });
    insta::assert_snapshot!("eval_how_to", draw(&pane).backend());
}

#[test]
fn equal_primary_scores_are_ordered_by_the_rouge_change() {
    let reference = "create the app and include the router";
    let mut close = text_sample(0, "a", reference, "nothing", "create the app and include");
    let mut far = text_sample(1, "b", reference, "nothing", "the");
    // Both multi-file answers failed to parse: their code scores tie at 0.
    for s in [&mut close, &mut far] {
        s.primary = "code_score".into();
        s.score_delta = Some(0.0);
    }
    let samples = [close, far];
    assert_eq!(state::sorted(&samples, state::Order::WorstFirst), [1, 0]);
    assert_eq!(state::sorted(&samples, state::Order::BestFirst), [0, 1]);
}
