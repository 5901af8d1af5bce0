//! FORMAT.md quotes the format's constants; this keeps the document and the code in agreement.
#![allow(clippy::unwrap_used)]

use basalt_segment::format::*;

#[test]
fn format_md_matches_the_constants() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md")).unwrap();
    let row = |name: &str| -> String {
        let line = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("FORMAT.md has no row for {name}"));
        line.split('|')
            .nth(2)
            .unwrap()
            .trim()
            .trim_matches('`')
            .to_string()
    };
    assert_eq!(row("HEADER_MAGIC").as_bytes(), HEADER_MAGIC);
    assert_eq!(row("TRAILER_MAGIC").as_bytes(), TRAILER_MAGIC);
    assert_eq!(row("FORMAT_VERSION"), FORMAT_VERSION.to_string());
    assert_eq!(row("MIN_READ_VERSION"), MIN_READ_VERSION.to_string());
    assert_eq!(row("HEADER_LEN"), HEADER_LEN.to_string());
    assert_eq!(row("ALIGNMENT"), ALIGNMENT.to_string());
    assert_eq!(row("TRAILER_LEN"), TRAILER_LEN.to_string());
    assert_eq!(row("BLOCK_ROWS"), BLOCK_ROWS.to_string());
    assert_eq!(
        row("INDEX_MIN_ROWS_PER_VALUE"),
        INDEX_MIN_ROWS_PER_VALUE.to_string()
    );
    assert_eq!(
        row("INDEX_ALL_BELOW_ROWS"),
        INDEX_ALL_BELOW_ROWS.to_string()
    );
    // The layout's widths add up.
    assert_eq!(TRAILER_LEN, 8 + 4 + 4 + TRAILER_MAGIC.len());
    assert!(HEADER_LEN >= HEADER_MAGIC.len() + 4 && HEADER_LEN.is_multiple_of(ALIGNMENT));
}
