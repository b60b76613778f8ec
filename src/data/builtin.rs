//! The sample datasets shipped inside the binary, so a fresh install has
//! data to open and a corpus for the tiny model's tokenizer.

/// (file name, contents) of every shipped sample dataset.
pub const SAMPLE_FILES: [(&str, &[u8]); 5] = [
    (
        "fastapi_projects.jsonl",
        include_bytes!("../../sample-data/fastapi_projects.jsonl"),
    ),
    (
        "alpaca_small.json",
        include_bytes!("../../sample-data/alpaca_small.json"),
    ),
    (
        "chat_small.jsonl",
        include_bytes!("../../sample-data/chat_small.jsonl"),
    ),
    (
        "sharegpt_small.jsonl",
        include_bytes!("../../sample-data/sharegpt_small.jsonl"),
    ),
    (
        "broken.jsonl",
        include_bytes!("../../sample-data/broken.jsonl"),
    ),
];

/// Every usable sample of the shipped clean datasets, in file order.
pub fn sample_conversations() -> Vec<super::Sample> {
    let mut out = Vec::new();
    for (name, bytes) in SAMPLE_FILES.iter().filter(|(n, _)| *n != "broken.jsonl") {
        let records: Vec<&[u8]> = if name.ends_with(".json") {
            // The shipped .json file is an array; split it the store's way.
            match super::store::index_array_bytes(bytes) {
                Ok(spans) => spans,
                Err(_) => continue,
            }
        } else {
            bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect()
        };
        for record in records {
            if let Some(sample) = super::parse::parse_record(record, None, None).sample {
                out.push(sample);
            }
        }
    }
    out
}
