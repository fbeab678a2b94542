//! A linear pre-scan of a document's nesting depth, run before the YAML or
//! JSON parser: a deeply nested document (`[[[[…`) costs the YAML parser
//! time quadratic in its depth, so it is refused before it is parsed.

use crate::engine::{Error, Result};

/// The deepest nesting a document may have. Warden's documents need five
/// or six levels; this leaves room for any hand-written layout.
pub const MAX_DOCUMENT_NESTING: usize = 64;

fn too_deep(line: usize, limit: usize) -> Error {
    Error::invalid(
        "document",
        format!("nested deeper than {limit} levels (line {line})"),
    )
}

/// Refuses a document nested deeper than `limit` levels, counting JSON
/// brackets, or YAML flow brackets plus block indentation levels. It may
/// overcount a little (a block scalar's own indentation), never undercount
/// a collection.
pub fn check_nesting(text: &str, limit: usize) -> Result<()> {
    if text.trim_start().starts_with('{') {
        json_nesting(text, limit)
    } else {
        yaml_nesting(text, limit)
    }
}

fn json_nesting(text: &str, limit: usize) -> Result<()> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(too_deep(line, limit));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

fn yaml_nesting(text: &str, limit: usize) -> Result<()> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote = Quote::None;
    for (n, line) in text.lines().enumerate() {
        let number = n + 1;
        let content = line.trim_start_matches(' ');
        let mut block = indents.len();
        if flow == 0 && quote == Quote::None && !content.is_empty() && !content.starts_with('#') {
            let indent = line.len() - content.len();
            while indents.last().is_some_and(|top| *top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            // `- - - x`: each compact sequence indicator is one more level.
            let mut rest = content;
            let mut dashes = 0;
            while let Some(r) = rest.strip_prefix("- ") {
                dashes += 1;
                rest = r.trim_start_matches(' ');
            }
            block = indents.len() + dashes;
        }
        if block + flow > limit {
            return Err(too_deep(number, limit));
        }
        // A flow collection opens a value only after nothing, `:`, `-` or
        // `?` (the last non-blank character on the line), or inside another
        // flow collection: `see [1` in a plain scalar opens nothing.
        let mut previous: Option<char> = None;
        let mut significant: Option<char> = None;
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Quote::Double => {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => quote = Quote::None,
                        _ => {}
                    }
                    continue;
                }
                Quote::Single => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = Quote::None;
                        }
                    }
                    continue;
                }
                Quote::None => {}
            }
            let opens_token = matches!(
                previous,
                None | Some(' ' | '\t' | '[' | '{' | ',' | ':' | '-' | '?')
            );
            match c {
                '#' if matches!(previous, None | Some(' ' | '\t')) => break,
                '"' if opens_token => quote = Quote::Double,
                '\'' if opens_token => quote = Quote::Single,
                '[' | '{' if flow > 0 || matches!(significant, None | Some(':' | '-' | '?')) => {
                    flow += 1;
                    if block + flow > limit {
                        return Err(too_deep(number, limit));
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                _ => {}
            }
            previous = Some(c);
            if !c.is_whitespace() {
                significant = Some(c);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ordinary_documents_pass() {
        let yaml = "organization: o\n# [[[[ a comment\nmodules:\n  - id: Leads\n    fields: [name, 'it''s [', \"x]\"]\n    description: see [1\n    custom_actions: {export: {level: READ}}\ngroups:\n  - - - deep\n";
        check_nesting(yaml, 8).unwrap();
        check_nesting(r#"{"organization":"o","modules":[{"id":"[[[["}]}"#, 3).unwrap();
    }

    #[test]
    fn deep_flow_block_and_json_nesting_is_refused_fast() {
        let flow = format!("organization: {}", "[".repeat(200_000));
        let started = Instant::now();
        let err = check_nesting(&flow, MAX_DOCUMENT_NESTING).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            err.to_string().contains("nested deeper than 64 levels"),
            "{err}"
        );

        let mut block = String::from("organization: o\nx:\n");
        for i in 0..100 {
            block.push_str(&" ".repeat(i + 1));
            block.push_str("k:\n");
        }
        assert!(check_nesting(&block, MAX_DOCUMENT_NESTING).is_err());
        assert!(
            check_nesting(&format!("organization: o\nx:\n{}y\n", "- ".repeat(100)), 64).is_err()
        );
        let json = format!("{{\"a\":{}", "[".repeat(100));
        assert!(check_nesting(&json, MAX_DOCUMENT_NESTING).is_err());
    }
}
