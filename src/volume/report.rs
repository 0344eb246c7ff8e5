//! `chujing report`: volume rows rendered as a fixed-width table or as JSON. Pure functions
//! over [`VolumeRow`]s (fetched with [`super::VolumeStore::report`]), so the CLI only wires.
//! Counts and transfer ids only: rows never hold an individual.

use std::fmt::Write as _;

use serde::Serialize;

use super::{VolumeRow, ENTITY_LEDGER};

/// Replaces the caps recorded with the last claim by the caps in force now, e.g.
/// `with_current_caps(&mut rows, |id| policy.transfer_caps(id))`. Rows of transfers no longer
/// configured (and the entity row) keep what was recorded.
pub fn with_current_caps(
    rows: &mut [VolumeRow],
    caps_of: impl Fn(&str) -> Option<(Option<u64>, Option<u64>)>,
) {
    for row in rows.iter_mut().filter(|r| r.transfer != ENTITY_LEDGER) {
        if let Some((all, sensitive)) = caps_of(&row.transfer) {
            row.max_individuals = all;
            row.max_sensitive_individuals = sensitive;
        }
    }
}

/// Share of a cap used, in percent; `None` without a cap. A zero cap is 100 % used as soon
/// as anyone is counted.
pub fn percent(count: u64, cap: Option<u64>) -> Option<f64> {
    cap.map(|cap| match cap {
        0 if count == 0 => 0.0,
        0 => 100.0,
        cap => count as f64 * 100.0 / cap as f64,
    })
}

fn label(row: &VolumeRow) -> &str {
    if row.transfer == ENTITY_LEDGER {
        "(entity total)"
    } else {
        &row.transfer
    }
}

fn opt_u64(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |p| format!("{p:.1}%"))
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// A table for people: one line per transfer and year, the entity total last in each year.
pub fn render_table(rows: &[VolumeRow]) -> String {
    const HEAD: [&str; 11] = [
        "TRANSFER",
        "YEAR",
        "INDIVIDUALS",
        "CAP",
        "USED",
        "SENSITIVE",
        "SENS CAP",
        "SENS USED",
        "FIRST SEEN",
        "LAST SEEN",
        "",
    ];
    let mut ordered: Vec<&VolumeRow> = rows.iter().collect();
    ordered.sort_by(|a, b| {
        (a.year, a.transfer == ENTITY_LEDGER, &a.transfer).cmp(&(
            b.year,
            b.transfer == ENTITY_LEDGER,
            &b.transfer,
        ))
    });
    let cells: Vec<[String; 10]> = ordered
        .iter()
        .map(|r| {
            [
                label(r).to_string(),
                r.year.to_string(),
                r.individuals.to_string(),
                opt_u64(r.max_individuals),
                opt_pct(percent(r.individuals, r.max_individuals)),
                r.sensitive_individuals.to_string(),
                opt_u64(r.max_sensitive_individuals),
                opt_pct(percent(
                    r.sensitive_individuals,
                    r.max_sensitive_individuals,
                )),
                opt_time(r.first_seen),
                opt_time(r.last_seen),
            ]
        })
        .collect();
    let mut widths = [0usize; 10];
    for (i, w) in widths.iter_mut().enumerate() {
        *w = cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([HEAD[i].len()])
            .max()
            .unwrap_or(0);
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        for (i, c) in cols.iter().enumerate() {
            // Names left-aligned, numbers right-aligned.
            if i == 0 || i >= 8 {
                let _ = write!(out, "{c:<w$}", w = widths[i]);
            } else {
                let _ = write!(out, "{c:>w$}", w = widths[i]);
            }
            out.push_str(if i + 1 < cols.len() { "  " } else { "" });
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&HEAD[..10]);
    for c in &cells {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&refs);
    }
    if cells.is_empty() {
        out.push_str("(no individuals counted)\n");
    }
    out
}

#[derive(Serialize)]
struct JsonRow<'a> {
    /// `null` for the entity-wide totals.
    transfer: Option<&'a str>,
    scope: &'static str,
    year: i32,
    individuals: u64,
    sensitive_individuals: u64,
    max_individuals: Option<u64>,
    max_sensitive_individuals: Option<u64>,
    percent: Option<f64>,
    sensitive_percent: Option<f64>,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

/// JSON for automation: `{"rows":[{"transfer":ID|null,"scope":"transfer"|"entity","year":Y,
/// "individuals":N,"sensitive_individuals":N,"max_individuals":N|null,
/// "max_sensitive_individuals":N|null,"percent":P|null,"sensitive_percent":P|null,
/// "first_seen":RFC3339|null,"last_seen":RFC3339|null}]}`.
pub fn render_json(rows: &[VolumeRow]) -> String {
    let rows: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|r| {
            let entity = r.transfer == ENTITY_LEDGER;
            JsonRow {
                transfer: (!entity).then_some(r.transfer.as_str()),
                scope: if entity { "entity" } else { "transfer" },
                year: r.year,
                individuals: r.individuals,
                sensitive_individuals: r.sensitive_individuals,
                max_individuals: r.max_individuals,
                max_sensitive_individuals: r.max_sensitive_individuals,
                percent: percent(r.individuals, r.max_individuals),
                sensitive_percent: percent(r.sensitive_individuals, r.max_sensitive_individuals),
                first_seen: r.first_seen.map(|t| t.to_rfc3339()),
                last_seen: r.last_seen.map(|t| t.to_rfc3339()),
            }
        })
        .collect();
    serde_json::json!({ "rows": rows }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rows() -> Vec<VolumeRow> {
        vec![
            VolumeRow {
                transfer: ENTITY_LEDGER.into(),
                year: 2026,
                individuals: 1500,
                sensitive_individuals: 3,
                max_individuals: None,
                max_sensitive_individuals: None,
                first_seen: None,
                last_seen: None,
            },
            VolumeRow {
                transfer: "SCC-2026-002".into(),
                year: 2026,
                individuals: 1500,
                sensitive_individuals: 3,
                max_individuals: Some(6000),
                max_sensitive_individuals: Some(0),
                first_seen: Some(Utc.with_ymd_and_hms(2026, 1, 15, 1, 2, 3).unwrap()),
                last_seen: Some(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()),
            },
        ]
    }

    #[test]
    fn table_lists_transfers_then_the_entity_total() {
        let t = render_table(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("TRANSFER"));
        assert!(lines[1].starts_with("SCC-2026-002"));
        assert!(lines[1].contains("25.0%"), "{t}");
        assert!(lines[1].contains("100.0%"), "{t}");
        assert!(lines[1].contains("2026-01-15T01:02:03Z"));
        assert!(lines[2].starts_with("(entity total)"));
        assert!(render_table(&[]).contains("no individuals"));
    }

    #[test]
    fn json_has_one_object_per_row() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&rows())).unwrap();
        let r = &v["rows"];
        assert_eq!(r[0]["transfer"], serde_json::Value::Null);
        assert_eq!(r[0]["scope"], "entity");
        assert_eq!(r[1]["transfer"], "SCC-2026-002");
        assert_eq!(r[1]["percent"], 25.0);
        assert_eq!(r[1]["max_individuals"], 6000);
        assert_eq!(r[1]["first_seen"], "2026-01-15T01:02:03+00:00");
    }

    #[test]
    fn current_caps_replace_recorded_ones() {
        let mut r = rows();
        with_current_caps(&mut r, |id| {
            (id == "SCC-2026-002").then_some((Some(3000), None))
        });
        assert_eq!(r[1].max_individuals, Some(3000));
        assert_eq!(r[1].max_sensitive_individuals, None);
        assert_eq!(r[0].max_individuals, None);
    }
}
