//! What a mixed load run measured, and its checks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::*;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    /// Sorted latencies of the exports sent in `[from, to)` seconds.
    fn latencies(&self, from: f64, to: f64) -> Vec<Duration> {
        let mut out: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .map(|s| s.latency)
            .collect();
        out.sort();
        out
    }

    /// The highest RSS (KiB) sampled in `[from, to]` seconds.
    fn peak_rss(&self, from: f64, to: f64) -> u64 {
        self.rss
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0)
    }

    /// The table: per interval the exports sent, p50/p99/max latency, peak RSS and the drop
    /// files written and reported; then the totals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| interval (s) | exports | p50 ms | p99 ms | max ms | RSS MiB (peak) | drop files written / reported |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let mut from = 0.0;
        while from < self.duration - 1e-9 {
            let to = (from + self.interval).min(self.duration);
            let lat = self.latencies(from, to);
            let written = self
                .drops
                .iter()
                .filter(|d| d.written >= from && d.written < to)
                .count();
            let reported = self
                .drops
                .iter()
                .filter(|d| {
                    d.reported
                        .as_ref()
                        .is_some_and(|(at, _)| *at >= from && *at < to)
                })
                .count();
            let _ = writeln!(
                out,
                "| {from:.0}–{to:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {written} / {reported} |",
                lat.len(),
                ms(quantile(&lat, 0.5)),
                ms(quantile(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default()),
                self.peak_rss(from, to) as f64 / 1024.0,
            );
            from = to;
        }
        let all = self.latencies(0.0, f64::INFINITY);
        let turnaround: Vec<f64> = self
            .drops
            .iter()
            .filter_map(|d| d.reported.as_ref().map(|(at, _)| at - d.written))
            .collect();
        let records: usize = self.drops.iter().map(|d| d.numbers.len()).sum();
        let _ = writeln!(
            out,
            "\nexports: {} ({:.1}/s) {:?}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            all.len(),
            all.len() as f64 / self.duration.max(1e-9),
            self.kinds,
            ms(quantile(&all, 0.5)),
            ms(quantile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default()),
        );
        let _ = writeln!(
            out,
            "drop files: {} ({records} records), reported {}; write to report: max {:.1} s, mean {:.1} s",
            self.drops.len(),
            turnaround.len(),
            turnaround.iter().copied().fold(0.0, f64::max),
            turnaround.iter().sum::<f64>() / turnaround.len().max(1) as f64,
        );
        let rss: Vec<String> = self
            .rss
            .iter()
            .step_by(usize::try_from((self.interval as u64).max(1)).unwrap_or(1))
            .map(|(at, kib)| format!("{at:.0}s:{:.1}", *kib as f64 / 1024.0))
            .collect();
        let _ = writeln!(out, "RSS MiB over time: {}", rss.join(" "));
        out
    }

    /// The latency and memory bounds (see the module docs); a message per bound exceeded.
    pub fn flatness(&self, factor: f64, slack: Duration) -> Vec<String> {
        let mut problems = self.latency_flatness(factor, slack);
        problems.extend(self.rss_flatness());
        problems
    }

    /// Latency: p99 of the last third ≤ `factor` × p99 of the first third + `slack`.
    pub fn latency_flatness(&self, factor: f64, slack: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        let third = self.duration / 3.0;
        let first = self.latencies(0.0, third);
        let last = self.latencies(self.duration - third, self.duration);
        let (p_first, p_last) = (quantile(&first, 0.99), quantile(&last, 0.99));
        let bound = p_first.mul_f64(factor) + slack;
        if first.is_empty() || last.is_empty() {
            problems.push(format!(
                "too few exports to compare: {} in the first third, {} in the last",
                first.len(),
                last.len()
            ));
        } else if p_last > bound {
            problems.push(format!(
                "p99 latency grew: {:.1} ms in the last third, {:.1} ms in the first (bound {:.1} ms)",
                ms(p_last),
                ms(p_first),
                ms(bound)
            ));
        }
        problems
    }

    /// Memory: peak RSS of the last minute ≤ 1.5 × that of the first minute + 32 MiB (the
    /// last and first thirds for runs under three minutes).
    pub fn rss_flatness(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let window = (self.duration / 3.0).min(60.0);
        let early = self.peak_rss(0.0, window);
        let late = self.peak_rss(self.duration - window, self.duration);
        let limit = early as f64 * 1.5 + 32.0 * 1024.0;
        if early == 0 || late == 0 {
            problems.push("no RSS samples".to_string());
        } else if late as f64 > limit {
            problems.push(format!(
                "RSS grew: peak {:.1} MiB in the last {window:.0} s, {:.1} MiB in the first (bound {:.1} MiB)",
                late as f64 / 1024.0,
                early as f64 / 1024.0,
                limit / 1024.0
            ));
        }
        problems
    }

    /// Checks the outcome against the store and the blobs (see the module docs); a message
    /// per problem. Blocking (storage calls): run it on a blocking thread.
    pub fn verify(&self, services: &Services, institution: &str) -> Vec<String> {
        let mut problems: Vec<String> = self.errors.clone();
        if self.samples.is_empty() {
            problems.push("no exports were sent".into());
        }
        if self.drops.is_empty() {
            problems.push("no drop files were written".into());
        }
        // Every number with a success → the MMS ID named for it.
        let mut named: HashMap<u64, String> = self.exported.clone();
        let mut name =
            |number: u64, mms: &str, whence: &str, problems: &mut Vec<String>| match named
                .get(&number)
            {
                Some(known) if known != mms => problems.push(format!(
                    "OCLC {number}: {whence} names MMS ID {mms}, a reply or an earlier line {known}"
                )),
                Some(_) => {}
                None => {
                    named.insert(number, mms.to_string());
                }
            };
        for file in &self.drops {
            let Some((_, report)) = &file.reported else {
                problems.push(format!("drop file {} has no report", file.name));
                continue;
            };
            let text = String::from_utf8_lossy(report);
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            if lines.len() != file.numbers.len() || text.lines().count() != file.numbers.len() {
                problems.push(format!(
                    "drop file {}: {} report lines for {} records",
                    file.name,
                    text.lines().count(),
                    file.numbers.len()
                ));
                continue;
            }
            for (i, (line, number)) in lines.iter().zip(&file.numbers).enumerate() {
                let index = i + 1;
                let whence = format!("{} record {index}", file.name);
                let outcome = line["outcome"].as_str().unwrap_or("");
                if line["index"].as_u64() != Some(index as u64)
                    || line["oclc_numbers"][0].as_u64() != Some(*number)
                {
                    problems.push(format!("{whence}: unexpected line {line}"));
                    continue;
                }
                if index == file.unconvertible {
                    if outcome != "failed" || line["reason_code"] != "MARCXML_CONVERSION_FAILED" {
                        problems.push(format!("{whence}: expected a conversion failure: {line}"));
                    }
                    continue;
                }
                match (outcome, line["mms_id"].as_str()) {
                    ("added" | "merged", Some(mms)) => name(*number, mms, &whence, &mut problems),
                    _ => problems.push(format!("{whence}: expected added or merged: {line}")),
                }
            }
        }
        match services.blobs.list(&format!("drop/{institution}/")) {
            Ok(keys) => {
                let left: Vec<&String> = keys.iter().filter(|k| k.contains("/load-")).collect();
                if !left.is_empty() {
                    problems.push(format!("drop files not taken: {left:?}"));
                }
            }
            Err(error) => problems.push(format!("listing the drop folder: {error}")),
        }
        // Each number in exactly one record, the one named.
        let mut numbers: Vec<u64> = named.keys().copied().collect();
        numbers.extend(self.pending.iter().filter(|n| !named.contains_key(n)));
        let mut found: HashMap<u64, Vec<String>> = HashMap::new();
        for chunk in numbers.chunks(100) {
            match services.store.find_by_oclc(institution, chunk) {
                Ok(entries) => {
                    for entry in entries {
                        found.entry(entry.number).or_default().push(entry.mms_id.0);
                    }
                }
                Err(error) => {
                    problems.push(format!("find_by_oclc: {error}"));
                    break;
                }
            }
        }
        let mut wrong = 0;
        for (number, mms) in &named {
            let records = found.get(number).map(Vec::as_slice).unwrap_or_default();
            if records != std::slice::from_ref(mms) {
                wrong += 1;
                if wrong <= 20 {
                    problems.push(format!(
                        "OCLC {number}: in records {records:?}, expected exactly [{mms}]"
                    ));
                }
            }
        }
        if wrong > 20 {
            problems.push(format!("… {wrong} numbers in the wrong records in all"));
        }
        // An export answered "pending" (already an error) was imported all the same.
        let mut expected = named.len();
        for number in &self.pending {
            if !named.contains_key(number) {
                match found.get(number).map_or(0, Vec::len) {
                    0 => {}
                    1 => {
                        named.insert(*number, String::new());
                        expected += 1;
                    }
                    n => problems.push(format!("OCLC {number} (pending export): in {n} records")),
                }
            }
        }
        match services.store.count_records(institution) {
            Ok(count) if count == expected as u64 => {}
            Ok(count) => problems.push(format!(
                "{count} records in {institution}, {expected} distinct OCLC numbers imported"
            )),
            Err(error) => problems.push(format!("count_records: {error}")),
        }
        problems
    }

    /// Distinct OCLC numbers that ended in a record (replies and report lines).
    pub fn distinct_numbers(&self) -> usize {
        let mut numbers: std::collections::HashSet<u64> = self.exported.keys().copied().collect();
        for file in &self.drops {
            for (i, number) in file.numbers.iter().enumerate() {
                if i + 1 != file.unconvertible {
                    numbers.insert(*number);
                }
            }
        }
        numbers.len()
    }
}
