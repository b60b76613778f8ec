//! The code checks of `eval --generate` on the sample multi-file dataset:
//! its reference answers are good projects, so they must pass every check,
//! and damaged copies of them must not.

use serde_json::{Value, json};
use tunebench::data::Store;
use tunebench::eval::code::check_answer;
use tunebench::eval::records::read_records;

fn records() -> Vec<tunebench::eval::records::EvalRecord> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-data/fastapi_projects.jsonl"
    );
    let (records, notes) = read_records(&Store::open(path).unwrap()).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    records
}

#[test]
fn reference_projects_pass_every_check() {
    let records = records();
    assert_eq!(records.len(), 30);
    // The six refinements check against the project they refine.
    let refinements = records.iter().filter(|r| !r.base_files.is_empty()).count();
    assert_eq!(refinements, 6);
    for r in &records {
        let expected = r.expected_files.clone().unwrap_or_default();
        let c = check_answer(&r.reference, &expected, &r.base_files, None);
        assert!(c.parsed, "line {}: {:?}", r.line, c.parse_error);
        assert!(
            c.syntax_errors.is_empty(),
            "line {}: {:?}",
            r.line,
            c.syntax_errors
        );
        assert!(
            c.invented_packages.is_empty(),
            "line {}: invented {:?} (imports {:?})",
            r.line,
            c.invented_packages,
            c.external_imports
        );
        assert!(c.unsafe_paths.is_empty());
        // Refinement records answer with the changed files only.
        if !r
            .user_text()
            .contains("only the files that are new or changed")
        {
            assert_eq!(
                c.coverage, 1.0,
                "line {}: missing {:?}",
                r.line, c.missing_files
            );
        }
    }
}

#[test]
fn damaged_projects_are_caught() {
    let record = &records()[0];
    let expected = record.expected_files.clone().unwrap();
    let mut answer: Value = serde_json::from_str(&record.reference).unwrap();
    let files = answer["files"].as_object_mut().unwrap();
    files.remove("tests/test_blog.py");
    files.insert(
        "app/main.py".into(),
        json!("from fastapi import FastAPI\napp = FastAPI(\n"),
    );
    files.insert("app/cache.py".into(), json!("import fastcache_pro\n"));
    let text = format!("```json\n{answer}\n```");
    let c = check_answer(&text, &expected, &[], None);
    assert!(c.parsed);
    assert_eq!(c.syntax_errors.len(), 1);
    assert_eq!(c.syntax_errors[0].path, "app/main.py");
    assert_eq!(c.missing_files, ["tests/test_blog.py"]);
    assert_eq!(c.invented_packages, ["fastcache_pro"]);
    assert!(c.score < 1.0 && c.score > 0.5, "{}", c.score);
    let truncated = &record.reference[..record.reference.len() / 2];
    let c = check_answer(truncated, &expected, &[], None);
    assert!(!c.parsed && c.parse_error.as_deref().unwrap().contains("EOF"));
    assert_eq!(c.score, 0.0);
}
