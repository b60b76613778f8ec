//! Workbench frame times, drawn into ratatui's TestBackend at 200x50:
//! the Data tab on a generated 1.4M-sample file (scrolling, key press to
//! frame), the Train tab following a run whose metrics grow every frame, and
//! the Chat tab with two answers streaming in. The target is 16 ms a frame
//! and 50 ms from key press to frame.
//!
//!     cargo bench --bench tui

mod common;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::io::Write;
use std::time::{Duration, Instant};
use tunebench::tui::action::{Action, Effect, ModelInfo, ModelStatus};
use tunebench::tui::app::App;
use tunebench::tui::panes::chat;
use tunebench::tui::{UiOptions, setup, view};

const FRAMES: usize = 300;

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn draw(terminal: &mut Terminal<TestBackend>, app: &App) -> Duration {
    let start = Instant::now();
    terminal.draw(|frame| view::render(app, frame)).unwrap();
    start.elapsed()
}

/// Mean, 99th percentile and worst, in milliseconds.
fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    let p99 = ms(times[(times.len() * 99 / 100).min(times.len() - 1)]);
    println!(
        "{what:<44} mean {mean:>6.2} ms   p99 {p99:>6.2} ms   max {:>6.2} ms",
        ms(*times.last().unwrap())
    );
}

fn step_line(step: usize) -> String {
    format!(
        "{{\"event\":\"step\",\"step\":{step},\"epoch\":{:.3},\"loss\":{:.4},\"lr\":0.0002,\"grad_norm\":0.8,\"tokens\":512,\"tokens_per_s\":1800.0,\"elapsed_s\":{:.1}}}\n",
        step as f64 / 1000.0,
        2.0 + 1.0 / (1.0 + step as f64 / 100.0) + (step % 7) as f64 * 0.02,
        step as f64 * 0.3
    )
}

fn main() {
    let megabytes: u64 = std::env::var("TUNEBENCH_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let data = common::generated_dataset(megabytes);
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    tunebench::model::tiny::init_tiny(&model, 0, &Default::default()).unwrap();
    let runs = work.path().join("runs");
    let run = runs.join("bench-run");
    std::fs::create_dir_all(&run).unwrap();
    let metrics_path = run.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).unwrap();
    writeln!(
        metrics,
        "{{\"event\":\"start\",\"run\":\"bench-run\",\"total_steps\":100000,\"pid\":999999999}}"
    )
    .unwrap();
    // A long run already: 5,000 steps in the charts.
    let mut step = 0;
    while step < 5000 {
        step += 1;
        metrics.write_all(step_line(step).as_bytes()).unwrap();
    }

    let opened = Instant::now();
    let start = setup::prepare(UiOptions {
        data: Some(data.clone()),
        model: Some(model.to_string_lossy().into_owned()),
        runs: Some(runs),
        ..UiOptions::default()
    })
    .unwrap();
    let mut app = start.app;
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let first = draw(&mut terminal, &app);
    println!(
        "{} ({} MB, {} samples): open {:.0} ms, first frame {:.1} ms, peak RSS {:.0} MB",
        data.display(),
        std::fs::metadata(&data).unwrap().len() >> 20,
        app.data.len(),
        opened.elapsed().as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        common::peak_rss_mb()
    );

    // Data tab: paging through the file, and key press to frame for one row.
    let mut frames = Vec::new();
    for _ in 0..FRAMES {
        key(&mut app, KeyCode::PageDown);
        frames.push(draw(&mut terminal, &app));
    }
    report("data: frame while paging", frames);
    let mut keys = Vec::new();
    for _ in 0..FRAMES {
        let start = Instant::now();
        key(&mut app, KeyCode::Char('j'));
        draw(&mut terminal, &app);
        keys.push(start.elapsed());
    }
    report("data: key press (j) to frame", keys);
    let start = Instant::now();
    key(&mut app, KeyCode::End);
    draw(&mut terminal, &app);
    println!(
        "data: End (last sample) to frame {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    // Chat: both columns streaming (no model runs here; the tokens are fed
    // as the workers would send them).
    app.update(Action::Model(ModelStatus::Ready(ModelInfo {
        name: "tiny".into(),
        adapter: Some(work.path().join("adapter")),
        precision: "f32".into(),
        generation: 1,
    })));
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::Char('i'));
    for c in "Write a FastAPI service with a health endpoint".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let ids: Vec<(chat::state::Side, u64)> = key(&mut app, KeyCode::Enter)
        .into_iter()
        .flat_map(|e| match e {
            Effect::Chat(chat::Job::Generate(columns)) => columns
                .into_iter()
                .map(|g| (g.column, g.generation_id))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(ids.len(), 2, "both columns generate");
    let pieces = [
        "from ",
        "fastapi ",
        "import ",
        "FastAPI\n",
        "app = ",
        "FastAPI()\n\n",
        "@app.get(",
        "\"/health\")\n",
    ];
    // Each frame both answers grow by a piece and the run logs a step; the
    // app follows the run on ticks (every 8th frame on the Chat tab, as the
    // real loop ticks 4 times a second at 30 frames a second).
    let mut frame_with_traffic = |app: &mut App, frame: usize, tick: bool| {
        for (column, id) in &ids {
            app.update(Action::Chat(chat::Msg::Token {
                column: *column,
                generation_id: *id,
                text: pieces[frame % pieces.len()].to_string(),
            }));
        }
        step += 1;
        metrics.write_all(step_line(step).as_bytes()).unwrap();
        if tick {
            app.update(Action::Tick);
        }
        draw(&mut terminal, app)
    };
    let chat_frames = (0..FRAMES)
        .map(|frame| frame_with_traffic(&mut app, frame, frame % 8 == 0))
        .collect();
    report("chat: frame with two streams + live run", chat_frames);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('2'));
    let train_frames = (0..FRAMES)
        .map(|frame| frame_with_traffic(&mut app, frame, true))
        .collect();
    report("train: frame following a live run + streams", train_frames);
    println!("peak RSS {:.0} MB", common::peak_rss_mb());
}
