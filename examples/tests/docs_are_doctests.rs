//! Every Rust block of `docs/*.md` runs as a doctest of this package: a
//! guide that is not included in `src/lib.rs`, or a block marked `ignore`,
//! could drift from the API unnoticed.

#[test]
fn every_rust_block_in_docs_is_a_doctest() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lib = std::fs::read_to_string(format!("{root}/examples/src/lib.rs")).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let blocks: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("```rust"))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        assert!(
            lib.contains(&format!("include_str!(\"../../docs/{name}\")")),
            "docs/{name} has Rust blocks but is not a doctest of examples/src/lib.rs"
        );
        for block in blocks {
            assert!(
                !block.contains("ignore") && !block.contains("no_run"),
                "docs/{name}: `{block}` does not run"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "the guides were found: {checked}");
}

/// The examples print values as users read them (`Display`), never as
/// `Debug` dumps such as `Ok(Some(Ok("21.5")))`.
#[test]
fn the_examples_print_no_debug_dumps() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            assert!(
                !line.contains(":?}") && !line.contains(":#?}"),
                "{}:{}: a Debug format: {line}",
                path.display(),
                number + 1
            );
        }
    }
}
