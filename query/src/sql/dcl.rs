//! PostgreSQL's spellings of user and role statements that the parser reads only in another form, rewritten into
//! that form: `CREATE USER name ...` is `CREATE ROLE name LOGIN ...` (as PostgreSQL defines it), and role
//! membership `GRANT r1, r2 TO u` / `REVOKE r FROM u` becomes `GRANT ROLE r1, ROLE r2 TO u`. Used only after a
//! statement failed to parse as written, so other statements pay nothing. Also `KILL [QUERY] id` (ClickHouse's
//! and MySQL's form; query ids here are strings, which the parser's KILL does not take) as `SELECT
//! kill_query('id')`, which the server answers.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// `KILL [QUERY] id` (the id quoted or bare) as `SELECT kill_query('id')`; `None` for any other text.
pub(crate) fn kill(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim_end();
    let mut words = text.splitn(2, char::is_whitespace);
    if !words.next()?.eq_ignore_ascii_case("kill") {
        return None;
    }
    let mut rest = words.next()?.trim_start();
    if let Some((first, after)) = rest.split_once(char::is_whitespace) {
        if first.eq_ignore_ascii_case("query") {
            rest = after.trim_start();
        }
    }
    let id = match rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(quoted) if !quoted.replace("''", "").contains('\'') => quoted.replace("''", "'"),
        Some(_) => return None,
        None if !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            rest.to_string()
        }
        None => return None,
    };
    Some(format!("SELECT kill_query('{}')", id.replace('\'', "''")))
}

/// The text with every such statement rewritten, or `None` when there was nothing to rewrite.
pub(crate) fn postgres_forms(sql: &str) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut out: Vec<String> = Vec::with_capacity(tokens.len() + 4);
    let mut changed = false;
    let mut start = 0;
    while start < tokens.len() {
        let end = tokens[start..]
            .iter()
            .position(|t| *t == Token::SemiColon)
            .map_or(tokens.len(), |i| start + i + 1);
        let stmt = &tokens[start..end];
        match rewrite(stmt) {
            Some(text) => {
                out.push(text);
                changed = true;
            }
            None => out.extend(stmt.iter().map(|t| t.to_string())),
        }
        start = end;
    }
    changed.then(|| out.concat())
}

fn keyword(t: &Token) -> Option<Keyword> {
    match t {
        Token::Word(w) => Some(w.keyword),
        _ => None,
    }
}

fn is_space(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// One statement's tokens rewritten, when it is one of the forms above.
fn rewrite(stmt: &[Token]) -> Option<String> {
    let words: Vec<usize> = (0..stmt.len()).filter(|&i| !is_space(&stmt[i])).collect();
    let kw = |n: usize| words.get(n).and_then(|&i| keyword(&stmt[i]));
    let text = |range: std::ops::Range<usize>| -> String {
        stmt[range].iter().map(|t| t.to_string()).collect()
    };
    match (kw(0)?, kw(1)) {
        (Keyword::CREATE, Some(Keyword::USER)) => {
            // CREATE USER name [WITH] options  ->  CREATE ROLE name [WITH] LOGIN options
            let user = words[1];
            let name = *words.get(2)?;
            let after = if kw(3) == Some(Keyword::WITH) {
                words[3]
            } else {
                name
            };
            Some(format!(
                "{}ROLE{} LOGIN{}",
                text(0..user),
                text(user + 1..after + 1),
                text(after + 1..stmt.len())
            ))
        }
        (Keyword::GRANT | Keyword::REVOKE, _) => {
            let until = if kw(0) == Some(Keyword::GRANT) {
                Keyword::TO
            } else {
                Keyword::FROM
            };
            let stop = words
                .iter()
                .position(|&i| keyword(&stmt[i]) == Some(until))?;
            let items = &words[1..stop];
            // A privilege list names privileges and an object (ON ...); a role list is plain names.
            let privilege = |i: usize| {
                matches!(
                    keyword(&stmt[i]),
                    Some(
                        Keyword::SELECT
                            | Keyword::INSERT
                            | Keyword::UPDATE
                            | Keyword::DELETE
                            | Keyword::ALL
                            | Keyword::ROLE
                            | Keyword::ON
                            | Keyword::USAGE
                            | Keyword::TRUNCATE
                            | Keyword::REFERENCES
                            | Keyword::TRIGGER
                            | Keyword::CREATE
                            | Keyword::CONNECT
                            | Keyword::TEMPORARY
                            | Keyword::EXECUTE
                    )
                )
            };
            if items.is_empty() || items.iter().any(|&i| privilege(i)) {
                return None;
            }
            let mut out = text(0..items[0]);
            let mut expect_name = true;
            for t in &stmt[items[0]..words[stop]] {
                if expect_name && !is_space(t) {
                    out.push_str("ROLE ");
                    expect_name = false;
                }
                if *t == Token::Comma {
                    expect_name = true;
                }
                out.push_str(&t.to_string());
            }
            out.push_str(&text(words[stop]..stmt.len()));
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_forms;

    #[test]
    fn postgresql_user_and_membership_forms_are_rewritten() {
        assert_eq!(
            postgres_forms("CREATE USER alice WITH PASSWORD 'x' IN ROLE reader").as_deref(),
            Some("CREATE ROLE alice WITH LOGIN PASSWORD 'x' IN ROLE reader")
        );
        assert_eq!(
            postgres_forms("create user bob password 'y'").as_deref(),
            Some("create ROLE bob LOGIN password 'y'")
        );
        assert_eq!(
            postgres_forms("GRANT reader, writer TO alice").as_deref(),
            Some("GRANT ROLE reader, ROLE writer TO alice")
        );
        assert_eq!(
            postgres_forms("REVOKE writer FROM alice;").as_deref(),
            Some("REVOKE ROLE writer FROM alice;")
        );
        assert_eq!(postgres_forms("GRANT SELECT ON t TO alice"), None);
        assert_eq!(postgres_forms("SELECT 1"), None);
    }

    #[test]
    fn kill_takes_a_string_id() {
        use super::kill;
        let want = Some("SELECT kill_query('0a1b')".to_string());
        assert_eq!(kill("KILL QUERY '0a1b'"), want);
        assert_eq!(kill("kill query 0a1b;"), want);
        assert_eq!(kill("KILL '0a1b'"), want);
        assert_eq!(
            kill("KILL QUERY 'it''s'").as_deref(),
            Some("SELECT kill_query('it''s')")
        );
        assert_eq!(kill("SELECT 1"), None);
        assert_eq!(kill("KILL QUERY a b"), None);
    }
}
