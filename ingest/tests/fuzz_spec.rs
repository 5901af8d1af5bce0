//! Ingest specs on generated input (proptest, bounded for CI): a valid spec with one field replaced by a value of
//! any JSON type, or its text cut or with a byte changed, must parse into a spec or give a typed error, never
//! panic. Failing inputs are kept in `fuzz_spec.proptest-regressions` beside this file.
#![allow(clippy::unwrap_used)]

use basalt_ingest::IngestSpec;
use proptest::prelude::*;
use serde_json::{json, Value};

fn valid() -> Value {
    json!({
        "table": "events",
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topic": "events", "properties": {"client.id": "basalt"}},
        "timestamp": {"column": "ts"},
        "dimensions": ["country", "user"],
        "metrics": [{"name": "bytes", "type": "long"}, {"name": "ms", "type": "double"}],
        "segment_granularity": "hour",
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_.() ']{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside `v`.
fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let mut p = here.clone();
                p.push(k.clone());
                paths(v, p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(i.to_string());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn replace(v: &mut Value, path: &[String], with: Value) {
    match path.split_first() {
        None => *v = with,
        Some((k, rest)) => {
            let child = match v {
                Value::Object(o) => o.get_mut(k),
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            };
            if let Some(c) = child {
                replace(c, rest, with);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn a_spec_with_a_field_of_any_value_parses_or_is_refused(
        pick in any::<prop::sample::Index>(),
        with in any_json(),
    ) {
        let mut spec = valid();
        let mut all = Vec::new();
        paths(&spec, Vec::new(), &mut all);
        replace(&mut spec, &all[pick.index(all.len())], with);
        let _ = IngestSpec::from_json(&spec.to_string());
    }

    #[test]
    fn a_cut_or_changed_spec_text_parses_or_is_refused(
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = valid().to_string().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(cut.index(bytes.len()) + 1);
        let _ = IngestSpec::from_json(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn the_valid_spec_is_valid() {
    IngestSpec::from_json(&valid().to_string()).unwrap();
}
