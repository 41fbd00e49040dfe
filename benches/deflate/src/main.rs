//! One backend of flate2 on the three ways xps compresses, at one level:
//!
//! - `whole`: a file compressed in one call (the compressed cache, error
//!   pages, `return` bodies);
//! - `file`: a large file compressed as it is sent, 64 KiB at a time;
//! - `proxy`: a proxied body compressed as it streams, 16 KiB per read with
//!   a sync flush after each (what the relay does).
//!
//! `xps-deflate-bench FILE LEVEL SECONDS [WAY,…]` prints one JSON line per way:
//! input MiB/s, compressed size, and the bytes one compressor holds while
//! it works (counted by the allocator).

use flate2::Compression;
use flate2::write::GzEncoder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only
// counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn backend() -> &'static str {
    if cfg!(feature = "zlib-rs") {
        "zlib-rs"
    } else if cfg!(feature = "zlib") {
        "zlib"
    } else {
        "miniz_oxide"
    }
}

/// Compresses `data` the way `way` says; the compressed size.
fn run(way: &str, data: &[u8], level: u32, out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut gz = GzEncoder::new(std::mem::take(out), Compression::new(level));
    let mut made = 0;
    match way {
        "whole" => gz.write_all(data).unwrap(),
        "file" => {
            for piece in data.chunks(64 << 10) {
                gz.write_all(piece).unwrap();
                made += gz.get_ref().len();
                gz.get_mut().clear();
            }
        }
        _ => {
            for piece in data.chunks(16 << 10) {
                gz.write_all(piece).unwrap();
                gz.flush().unwrap();
                made += gz.get_ref().len();
                gz.get_mut().clear();
            }
        }
    }
    let rest = gz.finish().unwrap();
    made += rest.len();
    *out = rest;
    made
}

/// The bytes a compressor holds once it has taken a piece: its state and
/// buffers, not the output.
fn state_bytes(level: u32, data: &[u8]) -> isize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut gz = GzEncoder::new(Vec::with_capacity(64 << 10), Compression::new(level));
    gz.write_all(&data[..data.len().min(16 << 10)]).unwrap();
    gz.flush().unwrap();
    let held = PEAK.load(Ordering::Relaxed) - base - (64 << 10).max(gz.get_ref().capacity() as isize);
    drop(gz);
    held
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).expect("the input file");
    let level: u32 = args[2].parse().expect("a level");
    let seconds: f64 = args[3].parse().expect("seconds");
    let mut out = Vec::new();
    let ways = args.get(4).map_or("whole,file,proxy", String::as_str);
    for way in ways.split(',') {
        // Warm up, then as many rounds as fit in the time.
        let size = run(way, &data, level, &mut out);
        let started = Instant::now();
        let mut rounds = 0u64;
        while started.elapsed() < Duration::from_secs_f64(seconds) {
            run(way, &data, level, &mut out);
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let mib_s = (data.len() as f64 * rounds as f64) / secs / (1 << 20) as f64;
        println!(
            "{{\"backend\":\"{}\",\"way\":\"{way}\",\"level\":{level},\"input\":{},\"size\":{size},\"mib_s\":{mib_s:.1},\"state\":{}}}",
            backend(),
            data.len(),
            state_bytes(level, &data)
        );
    }
}
