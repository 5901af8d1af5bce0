//! Transforms: derived columns computed from a row's fields before it is parsed, as Druid's `transformSpec`.
//!
//! Grammar (a small expression language):
//!
//! ```text
//! expr  := call | field | 'literal'
//! call  := name '(' [expr (',' expr)*] ')'        name in: concat, lower, upper, trim, coalesce, lpad
//! field := identifier | "quoted identifier"
//! ```
//!
//! Example: `ts=concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(DAY, 2, '0'))` builds an ISO date from parts.
//! Every result is a string (or NULL: any NULL argument makes `concat` NULL, as in SQL).

use crate::record::FieldValue;
use crate::{Error, Result};

/// A parsed transform expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field(String),
    Literal(String),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Concat,
    Lower,
    Upper,
    Trim,
    Coalesce,
    Lpad,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            text,
            depth: 0,
        };
        let e = p.expr()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.error("unexpected text after the expression"));
        }
        Ok(e)
    }

    /// Fields the expression reads.
    pub fn fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::Field(f) => out.push(f.clone()),
            Expr::Literal(_) => {}
            Expr::Call(_, args) => args.iter().for_each(|a| a.fields(out)),
        }
    }

    /// Evaluates over a row; `get` returns a field's value.
    pub fn eval<'a>(&self, get: &dyn Fn(&str) -> FieldValue<'a>) -> Option<String> {
        match self {
            Expr::Field(f) => get(f).to_text(),
            Expr::Literal(s) => Some(s.clone()),
            Expr::Call(func, args) => {
                let mut vals = args.iter().map(|a| a.eval(get));
                match func {
                    Func::Concat => vals.collect::<Option<Vec<String>>>().map(|v| v.concat()),
                    Func::Lower => vals.next().flatten().map(|s| s.to_lowercase()),
                    Func::Upper => vals.next().flatten().map(|s| s.to_uppercase()),
                    Func::Trim => vals.next().flatten().map(|s| s.trim().to_string()),
                    Func::Coalesce => vals.flatten().next(),
                    Func::Lpad => {
                        let v: Vec<Option<String>> = vals.collect();
                        let s = v.first().cloned().flatten()?;
                        let width: usize = v.get(1).cloned().flatten()?.parse().ok()?;
                        let pad = v.get(2).cloned().flatten().unwrap_or_else(|| " ".into());
                        let pad_char = pad.chars().next().unwrap_or(' ');
                        let len = s.chars().count();
                        Some(if len >= width {
                            s
                        } else {
                            std::iter::repeat_n(pad_char, width - len)
                                .chain(s.chars())
                                .collect()
                        })
                    }
                }
            }
        }
    }
}

/// How deep calls may nest (`lower(lower(...))`): parsing and evaluation recurse once a level.
pub const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
    /// Calls open around the expression being parsed.
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        let shown: String = self.text.chars().take(100).collect();
        let more = if shown.len() < self.text.len() {
            "..."
        } else {
            ""
        };
        Error::Spec(format!(
            "transform expression {shown:?}{more} at character {}: {what}",
            self.i + 1
        ))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn quoted(&mut self, q: u8) -> Result<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err(self.error("unterminated quote")),
                Some(c) if *c == q => {
                    if self.s.get(self.i + 1) == Some(&q) {
                        out.push(q);
                        self.i += 2;
                    } else {
                        self.i += 1;
                        break;
                    }
                }
                Some(c) => {
                    out.push(*c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }

    fn expr(&mut self) -> Result<Expr> {
        self.ws();
        match self.s.get(self.i) {
            None => Err(self.error("expected an expression")),
            Some(b'\'') => Ok(Expr::Literal(self.quoted(b'\'')?)),
            Some(b'"') => Ok(Expr::Field(self.quoted(b'"')?)),
            Some(c) if c.is_ascii_digit() || *c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.')
                {
                    self.i += 1;
                }
                Ok(Expr::Literal(self.text[start..self.i].to_string()))
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                let name = &self.text[start..self.i];
                self.ws();
                if self.s.get(self.i) != Some(&b'(') {
                    return Ok(Expr::Field(name.to_string()));
                }
                let func = match name.to_ascii_lowercase().as_str() {
                    "concat" => Func::Concat,
                    "lower" => Func::Lower,
                    "upper" => Func::Upper,
                    "trim" => Func::Trim,
                    "coalesce" => Func::Coalesce,
                    "lpad" => Func::Lpad,
                    _ => return Err(self.error(&format!("unknown function {name:?} (known: concat, lower, upper, trim, coalesce, lpad)"))),
                };
                self.i += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(
                        self.error(&format!("calls nest more than {MAX_DEPTH} levels deep"))
                    );
                }
                let mut args = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b')') {
                    self.i += 1;
                } else {
                    loop {
                        args.push(self.expr()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b')') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(self.error("expected ',' or ')'")),
                        }
                    }
                }
                self.depth -= 1;
                Ok(Expr::Call(func, args))
            }
            Some(_) => Err(self.error("unexpected character")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_date_from_parts() {
        let e = Expr::parse("concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(\"DAY\", 2, '0'))")
            .unwrap();
        let get = |f: &str| match f {
            "YEAR" => FieldValue::Str("2015"),
            "MONTH" => FieldValue::Int(1),
            "DAY" => FieldValue::Str("5"),
            _ => FieldValue::Missing,
        };
        assert_eq!(e.eval(&get), Some("2015-01-05".to_string()));
        let mut fields = Vec::new();
        e.fields(&mut fields);
        assert_eq!(fields, ["YEAR", "MONTH", "DAY"]);
    }

    #[test]
    fn errors_name_the_place() {
        let err = Expr::parse("concat(a, 'b'").unwrap_err().to_string();
        assert!(err.contains("expected ',' or ')'"), "{err}");
        assert!(Expr::parse("nosuch(a)")
            .unwrap_err()
            .to_string()
            .contains("unknown function"));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}x{}", "lower(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        Expr::parse(&ok).unwrap();
        let deep = 100_000;
        let bad = format!("{}x{}", "lower(".repeat(deep), ")".repeat(deep));
        let e = Expr::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("nest more than 64"), "{}", &e[e.len() - 80..]);
    }
}
