//! Every fuzz seed (fuzz/corpus/TARGET/) and every input a fuzzer ever crashed a target with
//! (tests/data/fuzz/TARGET/) through its target, as a plain test: a fixed crash stays fixed even
//! where AFL++ is not installed. The coverage-guided runs themselves are scripts/fuzz.sh.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_every_past_crash_runs_clean() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for (target, run) in openline::fuzzing::TARGETS {
        let seeds = inputs(&repo.join("fuzz/corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
        let found = inputs(&repo.join("tests/data/fuzz").join(target));
        for file in seeds.iter().chain(&found) {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
            total += 1;
        }
    }
    assert!(total >= 7);
}
