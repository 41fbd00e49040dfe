//! `docs/config.md` carries the reference generated from the directive
//! table, so the table and the docs cannot drift: this test fails when they
//! differ, and `XPS_BLESS=1` rewrites the generated part.

use crate::support::{blessing, root};

const BEGIN: &str = "<!-- directives:begin (generated from src/config/directives.rs; re-bless with XPS_BLESS=1) -->\n";
const END: &str = "<!-- directives:end -->";

#[test]
fn config_reference_matches_the_directive_table() {
    let path = root().join("docs/config.md");
    let doc = std::fs::read_to_string(&path).expect("docs/config.md");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = xps::config::directives::reference_markdown();
    if blessing() {
        let new = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(&path, new).expect("write docs/config.md");
        return;
    }
    assert!(
        doc[start..end] == generated,
        "docs/config.md is out of date with the directive table: run XPS_BLESS=1 cargo test --test conformance docs"
    );
}

#[test]
fn every_directive_is_in_the_reference() {
    let doc = std::fs::read_to_string(root().join("docs/config.md")).expect("docs/config.md");
    for spec in xps::config::directives::TABLE {
        assert!(
            doc.contains(&format!("### `{}`", spec.title())),
            "{} is not documented",
            spec.name
        );
    }
}
