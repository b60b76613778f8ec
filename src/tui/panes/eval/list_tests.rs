//! The samples list: numbered from 1, named by the request's words, and
//! stacked above the answers on a narrow screen.

use super::tests::{code_sample, draw, loaded_pane};
use crate::tui::panes::testing::draw_pane;

#[test]
fn the_list_numbers_from_one_and_shows_the_request_words() {
    let rendered = code_sample(3).prompt;
    assert!(rendered.starts_with("## Request\n"), "{rendered}");
    assert_eq!(
        super::render::request_words(&rendered),
        "Create a FastAPI todo service with tests"
    );
    assert_eq!(
        super::render::request_words("Plain  question?\nmore"),
        "Plain question? more"
    );
    let (_dir, pane) = loaded_pane();
    let screen = format!("{:?}", draw(&pane).backend());
    let row = screen
        .lines()
        .find(|line| line.contains("   4 +0.375 Create a FastAPI"))
        .unwrap_or_else(|| panic!("sample index 3 is listed as 4, by its request: {screen}"));
    assert!(!row.contains("## Request"), "{row}");
    assert!(!screen.contains("   0 "), "{screen}");
}

#[test]
fn snapshot_narrow_stacks_the_list_above_the_answers() {
    let (_dir, pane) = loaded_pane();
    // The pane's share of an 80x24 and a 160x40 screen.
    let narrow = draw_pane(&pane, 80, 22);
    insta::assert_snapshot!("eval_80x24", narrow.backend());
    let wide = draw_pane(&pane, 160, 38);
    insta::assert_snapshot!("eval_160x40", wide.backend());
}
