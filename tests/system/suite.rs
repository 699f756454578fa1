//! The test suite itself: the tests that need AWS (`tests/aws/*.rs`) are listed as ignored,
//! with the reason, by a plain `cargo test` (no emulator there), rather than passing without
//! doing anything, and the test command runs them all against moto.

use std::path::Path;

const IGNORE: &str = "#[ignore = \"needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)\"]";

#[test]
fn every_aws_test_is_ignored_with_its_reason_and_the_test_command_runs_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut tests = 0;
    let mut entries: Vec<_> = std::fs::read_dir(root.join("tests/aws"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".rs") && n != "main.rs" && n != "support.rs")
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty());
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("#[test]") || l.starts_with("#[tokio::test") {
                tests += 1;
                assert_eq!(
                    lines.get(i + 1).copied(),
                    Some(IGNORE),
                    "{}:{}: an AWS test without {IGNORE} passes in a plain `cargo test` without doing anything",
                    path.display(),
                    i + 1
                );
            }
        }
    }
    assert!(tests >= 30, "{tests} AWS tests found");
    let script =
        std::fs::read_to_string(root.join("scripts/test.sh")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        script
            .lines()
            .any(|l| l.starts_with("cargo nextest run") && l.contains("--run-ignored all")),
        "scripts/test.sh must run the ignored AWS tests"
    );
}
