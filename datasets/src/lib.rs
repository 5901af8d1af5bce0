//! A deterministic generator of web/app events for tests and benchmarks: the same seed and arguments give the
//! same rows (ChaCha8, a portable, reproducible generator) and the same file bytes. Rows are generated in chunks,
//! so 100M rows need bounded memory.
//!
//! Columns: `ts` (7 days by default, mostly in order with some jitter), dimensions with Zipf-skewed
//! cardinalities (`country` ~200, `city` ~5,000, `device` 10, `os` 20, `browser` 50, `path` ~100,000,
//! `referrer` ~10,000, `user_id` ~rows/20, `event_type` 12, `status` 15 codes), metrics `latency_ms` (double),
//! `bytes` (long), `revenue` (double, mostly zero) and `is_bot` (0/1).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

pub const DEVICES: [&str; 10] = [
    "desktop", "mobile", "tablet", "tv", "console", "watch", "car", "kiosk", "speaker", "other",
];
pub const OSES: [&str; 20] = [
    "Windows",
    "macOS",
    "Linux",
    "Android",
    "iOS",
    "iPadOS",
    "ChromeOS",
    "FreeBSD",
    "Tizen",
    "webOS",
    "KaiOS",
    "HarmonyOS",
    "Fire OS",
    "Roku OS",
    "tvOS",
    "watchOS",
    "Wear OS",
    "PlayStation",
    "Xbox",
    "Other",
];
pub const EVENT_TYPES: [&str; 12] = [
    "page_view",
    "click",
    "scroll",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "signup",
    "login",
    "logout",
    "error",
];
pub const STATUS_CODES: [i64; 15] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Config {
    pub rows: u64,
    pub seed: u64,
    /// Epoch milliseconds of the first event.
    pub start_ms: i64,
    pub days: u32,
    /// Rows per generated chunk.
    pub chunk_rows: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rows: 1_000_000,
            seed: 42,
            start_ms: 1_704_067_200_000,
            days: 7,
            chunk_rows: 65_536,
        }
    }
}

pub fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        s("country"),
        s("city"),
        s("device"),
        s("os"),
        s("browser"),
        s("path"),
        s("referrer"),
        s("user_id"),
        s("event_type"),
        Field::new("status", DataType::Int64, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("is_bot", DataType::Int64, false),
    ]))
}

/// A dimension: `n` values drawn with Zipf skew `s` (value 0 most frequent).
struct Dim {
    zipf: Zipf<f64>,
    n: u64,
}

impl Dim {
    fn new(n: u64, s: f64) -> Dim {
        Dim {
            zipf: Zipf::new(n.max(1) as f64, s).expect("valid Zipf parameters"),
            n: n.max(1),
        }
    }
    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        (self.zipf.sample(rng) as u64).clamp(1, self.n) - 1
    }
}

/// Streams the events as Arrow batches of `chunk_rows` rows.
pub struct Generator {
    cfg: Config,
    rng: ChaCha8Rng,
    next_row: u64,
    country: Dim,
    city: Dim,
    device: Dim,
    os: Dim,
    browser: Dim,
    path: Dim,
    referrer: Dim,
    user: Dim,
    event: Dim,
    status: Dim,
}

impl Generator {
    pub fn new(cfg: Config) -> Generator {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let users = (cfg.rows / 20).max(1);
        Generator {
            rng,
            next_row: 0,
            country: Dim::new(200, 1.1),
            city: Dim::new(5_000, 1.0),
            device: Dim::new(10, 1.3),
            os: Dim::new(20, 1.2),
            browser: Dim::new(50, 1.2),
            path: Dim::new(100_000, 1.0),
            referrer: Dim::new(10_000, 1.1),
            user: Dim::new(users, 0.8),
            event: Dim::new(12, 1.1),
            status: Dim::new(15, 2.0),
            cfg,
        }
    }

    fn chunk(&mut self, n: usize) -> RecordBatch {
        let span = i64::from(self.cfg.days) * 86_400_000;
        let rows = self.cfg.rows.max(1) as i128;
        let mut ts = Vec::with_capacity(n);
        let (mut country, mut city, mut device, mut os, mut browser) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut path, mut referrer, mut user, mut event) = (vec![], vec![], vec![], vec![]);
        let (mut status, mut latency, mut bytes, mut revenue, mut bot) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let i = self.next_row;
            self.next_row += 1;
            let r = &mut self.rng;
            let base = self.cfg.start_ms + (i as i128 * span as i128 / rows) as i64;
            // Mostly in order: a few seconds of jitter, and one event in a hundred up to ten minutes late.
            let jitter = if r.random_bool(0.01) {
                -r.random_range(0..600_000)
            } else {
                r.random_range(-3_000..3_000)
            };
            ts.push((base + jitter).clamp(self.cfg.start_ms, self.cfg.start_ms + span - 1));
            let c = self.country.sample(r);
            country.push(format!(
                "{}{}",
                (b'A' + (c / 26) as u8) as char,
                (b'A' + (c % 26) as u8) as char
            ));
            city.push(format!("city-{:04}", self.city.sample(r)));
            device.push(DEVICES[self.device.sample(r) as usize]);
            os.push(OSES[self.os.sample(r) as usize]);
            browser.push(format!("browser-{:02}", self.browser.sample(r)));
            let p = self.path.sample(r);
            path.push(format!(
                "/{}/{}/page-{p}",
                ["shop", "blog", "docs", "help", "account"][(p % 5) as usize],
                p % 97
            ));
            referrer.push(format!("site-{:04}.example", self.referrer.sample(r)));
            user.push(format!("u{:08}", self.user.sample(r)));
            let e = self.event.sample(r) as usize;
            event.push(EVENT_TYPES[e]);
            status.push(STATUS_CODES[self.status.sample(r) as usize]);
            let u: f64 = r.random_range(0.0001..1.0);
            latency.push((20.0 * (-u.ln()).powf(1.5) * 10.0).round() / 10.0);
            bytes.push(r.random_range(200..2_000_000i64) / (1 + (p % 7) as i64));
            revenue.push(if EVENT_TYPES[e] == "purchase" && r.random_bool(0.6) {
                (r.random_range(100..50_000) as f64) / 100.0
            } else {
                0.0
            });
            bot.push(i64::from(r.random_bool(0.03)));
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(country)),
            Arc::new(StringArray::from(city)),
            Arc::new(StringArray::from(device)),
            Arc::new(StringArray::from(os)),
            Arc::new(StringArray::from(browser)),
            Arc::new(StringArray::from(path)),
            Arc::new(StringArray::from(referrer)),
            Arc::new(StringArray::from(user)),
            Arc::new(StringArray::from(event)),
            Arc::new(Int64Array::from(status)),
            Arc::new(Float64Array::from(latency)),
            Arc::new(Int64Array::from(bytes)),
            Arc::new(Float64Array::from(revenue)),
            Arc::new(Int64Array::from(bot)),
        ];
        RecordBatch::try_new(schema(), cols).expect("generated columns match the schema")
    }
}

impl Iterator for Generator {
    type Item = RecordBatch;
    fn next(&mut self) -> Option<RecordBatch> {
        let left = self.cfg.rows - self.next_row;
        (left > 0).then(|| {
            let n = left.min(self.cfg.chunk_rows as u64) as usize;
            self.chunk(n)
        })
    }
}
