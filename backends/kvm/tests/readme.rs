//! The README's "Use it" program is `examples/hosted.rs`, character for character, and runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hosted {
    include!("../examples/hosted.rs");

    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        main()
    }
}

/// The first ```rust block after the "## Use it" heading of the repository README.
fn readme_program() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let section = &readme[readme.find("\n## Use it\n").expect("a \"Use it\" section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let len = section[start..].find("```\n").expect("the block's end");
    section[start..start + len].to_string()
}

#[test]
fn the_readme_shows_the_hosted_example() {
    let example = include_str!("../examples/hosted.rs");
    let code = example
        .split_once("\n\n")
        .map(|(_header, code)| code)
        .expect("a header comment, a blank line, then the program");
    assert_eq!(
        readme_program(),
        code,
        "README.md's \"Use it\" program and examples/hosted.rs differ"
    );
}

#[test]
fn the_readme_example_runs() {
    hosted::run().expect("the README's program");
}
