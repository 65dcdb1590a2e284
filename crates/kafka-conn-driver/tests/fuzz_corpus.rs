//! Replays the committed corpus (`fuzz/corpus/proxy_replies/`) and any past
//! crash input (`fuzz/regressions/proxy_replies/`) of the driver's fuzz target
//! through its body, on stable Rust, so a fixed finding stays fixed. See
//! docs/fuzzing.md.

use std::path::{Path, PathBuf};

use kafka_conn_driver::fuzz_support::run_proxy_replies;

const TARGET: &str = "proxy_replies";

fn inputs(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let Ok(entries) = std::fs::read_dir(root.join(dir).join(TARGET)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_proxy_replies_corpus_replays_cleanly() {
    let corpus = inputs("corpus");
    assert!(!corpus.is_empty(), "no seed corpus in fuzz/corpus/{TARGET}");
    for path in corpus.iter().chain(&inputs("regressions")) {
        let data = std::fs::read(path).expect("readable input");
        if std::panic::catch_unwind(|| run_proxy_replies(&data)).is_err() {
            panic!("fuzz target {TARGET} fails on {}", path.display());
        }
    }
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml"),
    )
    .expect("fuzz/Cargo.toml");
    assert!(manifest.contains(&format!("name = \"{TARGET}\"")));
}
