//! Replaying the committed fuzz corpus (`fuzz/corpus/<target>/`) and every
//! past crash input (`fuzz/regressions/<target>/`) through the body a
//! cargo-fuzz target runs, on stable Rust, so that a fixed finding stays
//! fixed. Each crate with fuzz targets has a `tests/fuzz_corpus.rs` that
//! hands its targets to [`check_targets`]. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

/// A fuzz target: its name (as in `fuzz/Cargo.toml`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// The workspace's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<dir>/<target>/`, sorted (empty if it is absent).
pub fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `run` on each file; a panic names the target and the input.
pub fn replay(target: &str, run: fn(&[u8]), files: &[PathBuf]) {
    for path in files {
        let data = std::fs::read(path).expect("readable input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

/// Panics unless `target` has a `[[bin]]` in `fuzz/Cargo.toml`, a
/// `fuzz/fuzz_targets/<target>.rs` and a non-empty seed corpus.
pub fn assert_wired(target: &str) {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    assert!(
        manifest.contains(&format!("name = \"{target}\"")),
        "fuzz/Cargo.toml has no [[bin]] for {target}"
    );
    assert!(
        fuzz_dir()
            .join(format!("fuzz_targets/{target}.rs"))
            .is_file(),
        "no fuzz/fuzz_targets/{target}.rs"
    );
    assert!(
        !inputs("corpus", target).is_empty(),
        "no seed corpus in fuzz/corpus/{target}/"
    );
}

/// For every target: it is wired into cargo-fuzz ([`assert_wired`]), and its
/// seed corpus and past crash inputs replay without a finding. Returns how
/// many inputs ran.
pub fn check_targets(targets: &[Target]) -> usize {
    assert!(!targets.is_empty(), "no fuzz targets given");
    let mut total = 0;
    for &(target, run) in targets {
        assert_wired(target);
        for dir in ["corpus", "regressions"] {
            let files = inputs(dir, target);
            total += files.len();
            replay(target, run, &files);
        }
    }
    total
}

/// The target named `name` among `targets`, for triage by hand.
pub fn find(targets: &[Target], name: &str) -> fn(&[u8]) {
    targets
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}
