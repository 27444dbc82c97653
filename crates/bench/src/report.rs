//! One run's figures (a JSON line and a readable line) and the min/median/max over several runs.

use serde_json::{Map, Value, json};

/// The figures of one run.
#[derive(Debug)]
pub struct Figures {
    fields: Map<String, Value>,
    /// The readable line.
    pub line: String,
}

impl Figures {
    pub fn new(scenario: &str, store: &str, size: u64) -> Figures {
        let mut fields = Map::new();
        fields.insert("scenario".into(), json!(scenario));
        fields.insert("store".into(), json!(store));
        fields.insert("size".into(), json!(size));
        Figures {
            fields,
            line: String::new(),
        }
    }

    /// Adds a figure (numbers are rounded to 3 decimals so the line stays readable).
    pub fn put(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let v = match value.into() {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                json!((f * 1000.0).round() / 1000.0)
            }
            v => v,
        };
        self.fields.insert(key.into(), v);
        self
    }

    pub fn json_line(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// Min, median and max of every numeric figure present in all `runs`, as a JSON line and a readable line.
pub fn summarize(runs: &[Map<String, Value>]) -> (String, String) {
    let Some(first) = runs.first() else {
        return ("{}".into(), "no runs".into());
    };
    let label = |k: &str| first.get(k).cloned().unwrap_or(Value::Null);
    let mut summary = Map::new();
    let mut words = Vec::new();
    for (key, value) in first {
        if key == "size" || !value.is_number() {
            continue;
        }
        let mut xs: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.get(key).and_then(Value::as_f64))
            .collect();
        if xs.len() != runs.len() {
            continue;
        }
        xs.sort_by(f64::total_cmp);
        let (min, med, max) = (xs[0], median(&xs), xs[xs.len() - 1]);
        summary.insert(key.clone(), json!({"min": min, "median": med, "max": max}));
        words.push(format!(
            "{key} {}/{}/{}",
            short(min),
            short(med),
            short(max)
        ));
    }
    let line = json!({
        "scenario": label("scenario"),
        "store": label("store"),
        "size": label("size"),
        "runs": runs.len(),
        "summary": summary,
    });
    let readable = format!(
        "{} [{}] size {} over {} runs (min/median/max): {}",
        label("scenario").as_str().unwrap_or("?"),
        label("store").as_str().unwrap_or("?"),
        label("size"),
        runs.len(),
        words.join(", ")
    );
    (line.to_string(), readable)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A number with at most 3 significant decimals.
pub fn short(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, rss: f64) -> Map<String, Value> {
        let mut f = Figures::new("upload", "sqlite", 10);
        f.put("contacts_per_s", rate)
            .put("peak_rss_mb", rss)
            .put("note", "x");
        match serde_json::from_str(&f.json_line()).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn summarizes_numeric_figures_as_min_median_max() {
        let (line, readable) = summarize(&[run(3.0, 10.0), run(1.0, 30.0), run(2.0, 20.0)]);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["runs"], 3);
        assert_eq!(
            v["summary"]["contacts_per_s"],
            json!({"min": 1.0, "median": 2.0, "max": 3.0})
        );
        assert_eq!(v["summary"]["peak_rss_mb"]["median"], 20.0);
        assert!(v["summary"].get("note").is_none());
        assert!(
            readable.contains("contacts_per_s 1.00/2.00/3.00"),
            "{readable}"
        );
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[1.0, 2.0, 4.0, 8.0]), 3.0);
    }
}
