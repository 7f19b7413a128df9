//! The cost of checking one phone number (`dialer::phone::normalize`, what
//! `import` and the first look run for every lead): microseconds per number
//! on 200,000 distinct US numbers and on 200,000 numbers of twelve
//! countries mixed, per run and their median (`DIALER_BENCH_RUNS`, default
//! 3). `cargo bench --bench phone`. Asserts nothing.

mod support;
use std::time::Instant;
use support::{env_or, median};

const N: usize = 200_000;

fn us() -> Vec<String> {
    (0..N).map(|i| format!("+1212{}", 2_000_000 + i)).collect()
}

/// Numbers of twelve country codes and 7 to 12 digits: valid and not.
fn mixed() -> Vec<String> {
    let mut x: u64 = 12_345;
    (0..N)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let cc = [1, 33, 44, 49, 61, 81, 91, 52, 55, 7, 86, 34][(x >> 60) as usize % 12];
            let len = 7 + (x >> 40) % 6;
            format!("+{cc}{}", (x >> 8) % 10u64.pow(len as u32))
        })
        .collect()
}

fn main() {
    let runs = env_or("DIALER_BENCH_RUNS", 3).max(1);
    for (label, numbers) in [("US", us()), ("mixed", mixed())] {
        let mut per = Vec::new();
        let mut valid = 0;
        for run in 1..=runs {
            let t = Instant::now();
            valid = numbers
                .iter()
                .filter(|n| dialer::phone::normalize(n, None).is_ok())
                .count();
            let us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
            println!("{label} run {run}: {us:.2} µs per number ({valid} of {N} valid)");
            per.push(us);
        }
        println!(
            "{label}: median of {runs}: {:.2} µs per number ({valid} of {N} valid)",
            median(per)
        );
    }
}
