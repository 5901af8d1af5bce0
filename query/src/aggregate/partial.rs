//! Partial results (one per segment share) and their merge: shares of a segment by dictionary code, then
//! across segments by key value, in a fixed order, on several threads when groups are many.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};

use super::group_table::{decode_code, same_values};
use super::{Acc, KeyRow};
use crate::error::{QueryError, Result};
use crate::expr::Scalar;
use crate::plan::AggCall;

/// Group keys of a share as codes of its segment's dictionary.
#[derive(Clone)]
pub struct DenseKeys {
    pub(crate) values: ArrayRef,
    pub(crate) codes: Vec<u32>,
}

/// The partial result of one segment (or the merged total).
#[derive(Clone)]
pub struct Partial {
    pub keys: Vec<KeyRow>,
    pub accs: Vec<Acc>,
    /// When set, the keys are these codes (and `keys` holds placeholders): shares of one segment merge by code.
    pub codes: Option<DenseKeys>,
}

impl Partial {
    pub fn new(aggs: &[AggCall]) -> Partial {
        Partial {
            keys: Vec::new(),
            accs: aggs.iter().map(Acc::new).collect(),
            codes: None,
        }
    }

    /// Estimated heap bytes of the keys and aggregate states.
    pub fn memory_bytes(&self) -> usize {
        key_rows_bytes(&self.keys)
            + self.codes.as_ref().map_or(0, |c| c.codes.capacity() * 4)
            + self.accs.iter().map(Acc::memory_bytes).sum::<usize>()
    }

    /// Replaces code keys by decoded keys.
    fn decoded(mut self) -> Result<Partial> {
        if let Some(d) = self.codes.take() {
            self.keys = d
                .codes
                .iter()
                .map(|c| decode_code(&d.values, *c).map(|k| vec![k]))
                .collect::<Result<_>>()?;
        }
        Ok(self)
    }
}

/// Merges runs of partials over the same dictionary (the shares of one segment) by code, with an array lookup
/// instead of hashing decoded keys; the runs stay coded (see [`merge_partials`]). Order is kept, so merges stay
/// deterministic.
fn merge_by_code(partials: Vec<Partial>) -> Result<Vec<Partial>> {
    let mut out: Vec<Partial> = Vec::new();
    let mut run: Option<(Partial, Vec<u32>)> = None;
    for p in partials {
        let joins = match (&run, &p.codes) {
            (Some((r, _)), Some(c)) => r
                .codes
                .as_ref()
                .is_some_and(|rc| same_values(&rc.values, &c.values)),
            _ => false,
        };
        if !joins {
            if let Some((r, _)) = run.take() {
                out.push(r);
            }
            match &p.codes {
                Some(c) => {
                    let mut slots = vec![u32::MAX; c.values.len() + 1];
                    for (g, code) in c.codes.iter().enumerate() {
                        if let Some(s) = slots.get_mut(*code as usize) {
                            *s = g as u32;
                        }
                    }
                    run = Some((p, slots));
                }
                None => out.push(p),
            }
            continue;
        }
        let Some((r, slots)) = run.as_mut() else {
            continue;
        };
        let (Some(rc), Some(pc)) = (r.codes.as_mut(), p.codes.as_ref()) else {
            continue;
        };
        let mut targets = Vec::with_capacity(pc.codes.len());
        for code in &pc.codes {
            let Some(slot) = slots.get_mut(*code as usize) else {
                return Err(QueryError::internal("code past the dictionary"));
            };
            if *slot == u32::MAX {
                *slot = rc.codes.len() as u32;
                rc.codes.push(*code);
                r.keys.push(Vec::new());
            }
            targets.push(*slot as usize);
        }
        for (a, b) in r.accs.iter_mut().zip(&p.accs) {
            a.resize(r.keys.len());
            for (local, g) in targets.iter().enumerate() {
                a.merge(*g, b, local)?;
            }
        }
    }
    if let Some((r, _)) = run {
        out.push(r);
    }
    Ok(out)
}

/// Heap bytes of decoded group keys.
pub(crate) fn key_rows_bytes(keys: &Vec<KeyRow>) -> usize {
    use std::mem::size_of;
    keys.capacity() * size_of::<KeyRow>()
        + keys
            .iter()
            .map(|k| {
                k.capacity() * size_of::<Scalar>()
                    + k.iter()
                        .map(|v| match v {
                            Scalar::Str(s) => s.capacity(),
                            _ => 0,
                        })
                        .sum::<usize>()
            })
            .sum::<usize>()
}

/// A partial's group keys encoded: one byte arena, and each group's (start, end) in it.
type EncodedKeys = (Vec<u8>, Vec<(usize, usize)>);

/// Groups below this many (over all partials) are merged on one thread.
const PARALLEL_MERGE_GROUPS: usize = 32_768;

/// Merges partials in the order given (deterministic float sums): the shares of a segment by dictionary code,
/// then across segments by key, with many groups on several threads (see [`merge_keyed`]).
pub fn merge_partials(partials: Vec<Partial>, aggs: &[AggCall], threads: usize) -> Result<Partial> {
    let partials = merge_by_code(partials)?;
    let total: usize = partials.iter().map(|p| p.keys.len()).sum();
    let parts = if total < PARALLEL_MERGE_GROUPS {
        1
    } else {
        threads.max(1)
    };
    // One string key kept as codes in every partial (a GROUP BY on one dimension): merge by the dictionaries'
    // strings, borrowed, so only the merged groups get an owned key.
    let dicts: Option<Vec<(&StringArray, &[u32])>> = partials
        .iter()
        .map(|p| {
            let c = p.codes.as_ref()?;
            Some((c.values.as_string_opt::<i32>()?, c.codes.as_slice()))
        })
        .collect();
    if let Some(dicts) = dicts {
        let keys: Vec<Vec<(u64, Option<&str>)>> = dicts
            .iter()
            .map(|(values, codes)| {
                codes
                    .iter()
                    .map(|c| {
                        let v = (*c as usize) < values.len();
                        let key = v.then(|| values.value(*c as usize));
                        (key.map_or(0, |k| hash_bytes(k.as_bytes())), key)
                    })
                    .collect()
            })
            .collect();
        return merge_keyed(&partials, &keys, aggs, parts, |p, local| {
            vec![keys[p][local]
                .1
                .map_or(Scalar::Null, |k| Scalar::Str(k.to_string()))]
        });
    }
    let mut partials = partials
        .into_iter()
        .map(Partial::decoded)
        .collect::<Result<Vec<_>>>()?;
    if partials.len() > 1
        && partials.iter().all(|p| p.keys.iter().all(Vec::is_empty))
        && partials
            .iter()
            .any(|p| p.accs.iter().any(|a| matches!(a, Acc::Distinct(_))))
    {
        // One group over several segments: every segment's distinct codes will become hashed keys in the
        // merge, so hash them now, a segment per thread, instead of one after another in the merge.
        let chunk = partials.len().div_ceil(threads.max(1));
        let hash = |part: &mut [Partial]| {
            part.iter_mut()
                .flat_map(|p| p.accs.iter_mut())
                .for_each(Acc::hash_codes)
        };
        std::thread::scope(|s| {
            for part in partials.chunks_mut(chunk) {
                s.spawn(move || hash(part));
            }
        });
    }
    // Each group's encoded key and its hash, computed once: one byte arena per partial, with each group's
    // (start, end) in it, so no allocation per group.
    let arenas: Vec<EncodedKeys> = partials
        .iter()
        .map(|p| {
            let mut arena = Vec::new();
            let spans = p
                .keys
                .iter()
                .map(|k| {
                    let start = arena.len();
                    key_bytes_into(k, &mut arena);
                    (start, arena.len())
                })
                .collect();
            (arena, spans)
        })
        .collect();
    let keys: Vec<Vec<(u64, &[u8])>> = arenas
        .iter()
        .map(|(arena, spans)| {
            spans
                .iter()
                .map(|(a, b)| (hash_bytes(&arena[*a..*b]), &arena[*a..*b]))
                .collect()
        })
        .collect();
    merge_keyed(&partials, &keys, aggs, parts, |p, local| {
        partials[p].keys[local].clone()
    })
}

/// Merges the groups of `partials`, in order, by a borrowed key per group (`keys[partial][group]`, with its
/// hash). With `parts` > 1 the key space is split by hash into one partition per thread; each partition merges
/// its groups in the same partial order, so the answer does not depend on the thread count, only the order of
/// groups (which ORDER BY fixes) does. `owned` makes a merged group's key.
fn merge_keyed<K>(
    partials: &[Partial],
    keys: &[Vec<(u64, K)>],
    aggs: &[AggCall],
    parts: usize,
    owned: impl Fn(usize, usize) -> KeyRow + Sync,
) -> Result<Partial>
where
    K: Eq + std::hash::Hash + Copy + Sync,
{
    let merge_part = |part: usize| -> Result<Partial> {
        // Keyed by the hash computed once per group (a map that hashed the keys again spent a tenth of a
        // 100,000-group top-N doing it).
        let mut index: hashbrown::HashTable<(u64, K, usize)> = hashbrown::HashTable::new();
        let mut out = Partial::new(aggs);
        for (pi, (p, keys)) in partials.iter().zip(keys).enumerate() {
            out.accs
                .iter_mut()
                .for_each(|a| a.resize(out.keys.len() + p.keys.len()));
            for (local, (h, key)) in keys.iter().enumerate() {
                if parts > 1 && (*h as usize) % parts != part {
                    continue;
                }
                let g = match index.find(*h, |e| e.0 == *h && e.1 == *key) {
                    Some(e) => e.2,
                    None => {
                        out.keys.push(owned(pi, local));
                        let g = out.keys.len() - 1;
                        index.insert_unique(*h, (*h, *key, g), |e| e.0);
                        g
                    }
                };
                for (a, b) in out.accs.iter_mut().zip(&p.accs) {
                    a.merge(g, b, local)?;
                }
            }
            out.accs.iter_mut().for_each(|a| a.resize(out.keys.len()));
        }
        Ok(out)
    };
    if parts <= 1 {
        return merge_part(0);
    }
    let merged: Vec<Result<Partial>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|i| {
                let merge_part = &merge_part;
                s.spawn(move || merge_part(i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // Partitions hold disjoint keys: concatenate them.
    let mut out = Partial::new(aggs);
    for p in merged {
        let p = p?;
        let base = out.keys.len();
        out.accs
            .iter_mut()
            .for_each(|a| a.resize(base + p.keys.len()));
        for (a, b) in out.accs.iter_mut().zip(&p.accs) {
            for local in 0..p.keys.len() {
                a.merge(base + local, b, local)?;
            }
        }
        out.keys.extend(p.keys);
    }
    Ok(out)
}

fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    // A fixed seed: the same key lands in the same partition on every run.
    foldhash::fast::FixedState::with_seed(0x6261_7361_6c74).hash_one(b)
}

fn key_bytes_into(key: &KeyRow, out: &mut Vec<u8>) {
    for s in key {
        match s {
            Scalar::Null => out.push(0),
            Scalar::Bool(b) => out.extend([1, u8::from(*b)]),
            Scalar::Int(i) | Scalar::Timestamp(i) => {
                out.push(2);
                out.extend(i.to_le_bytes());
            }
            Scalar::Float(f) => {
                out.push(3);
                out.extend(
                    (if *f == 0.0 { 0.0f64 } else { *f })
                        .to_bits()
                        .to_le_bytes(),
                );
            }
            Scalar::Str(s) => {
                out.push(4);
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
        }
    }
}
